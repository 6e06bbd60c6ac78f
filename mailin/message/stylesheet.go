package message

import (
	"sort"
	"strings"
)

// maxStyleRules bounds the rules kept from a mail's <style> elements, so that matching
// stays cheap whatever arrives; a mail with more is not read past them.
const maxStyleRules = 512

// styleSheet holds the rules of a mail's <style> elements that HTMLText follows (CSS 2.1
// §5, Selectors Level 3): rules whose selector is one compound selector (p, .MsoNormal,
// p.MsoNormal, #id, *) apply as a browser applies them, by specificity then order, under the
// style attribute, and with !important over it. Rules it cannot fully check (a descendant
// or child combinator, a pseudo-class, an attribute selector, inside @media) are "uncertain":
// they are matched by their last compound selector, and applied only where they hide text,
// so that such a rule cannot make hidden text read, and can at worst leave unread text a
// reader would see. Other at-rules (@page, @font-face…) are skipped.
type styleSheet struct {
	rules []styleRule
	// overflow: more than maxStyleRules rules, or more than maxRuleChecks matches tried
	overflow bool
	checks   int // rules tried against elements so far
	// memo keeps the declarations of recent elements by tag, id and class, so that a mail
	// of many alike elements costs one match each; cleared when full.
	memo map[string][]styled
}

// maxMemo bounds styleSheet.memo.
const maxMemo = 4096

// maxRuleChecks bounds the rules tried against elements in one mail (about a second of
// work), so that many rules times many elements cannot stall the reader; a mail needing
// more is not read past that point. Real mails need a few hundred thousand at most.
const maxRuleChecks = 1 << 25

type styleRule struct {
	match       compoundSelector
	uncertain   bool
	specificity int // ids, classes and types as decimal digits of weight 10000, 100, 1
	order       int
	decls       []declaration
}

// compoundSelector is a type selector (or *) with classes and an id, all to match.
type compoundSelector struct {
	tag     string // "" for any
	id      string
	classes []string
}

// parse adds the rules of a style element's text.
func (s *styleSheet) parse(css string) {
	// <!-- and --> around a style sheet hide it from very old browsers and mean nothing
	// (CSS Syntax §5.4.1: CDO and CDC are skipped at the top level).
	css = strings.NewReplacer("<!--", " ", "-->", " ").Replace(css)
	s.parseBlock(unescapeCSS(stripComments(css)), false)
}

// parseBlock reads rules up to the end of css; inMedia says they sit in @media.
func (s *styleSheet) parseBlock(css string, inMedia bool) {
	for {
		css = strings.TrimSpace(css)
		open := strings.IndexByte(css, '{')
		if open < 0 {
			return
		}
		prelude := strings.TrimSpace(css[:open])
		body, rest := matchingBrace(css[open+1:])
		css = rest
		if strings.HasPrefix(prelude, "@") {
			if strings.HasPrefix(strings.ToLower(prelude), "@media") {
				s.parseBlock(body, true)
			}
			continue
		}
		decls := parseDeclarations(body)
		if len(decls) == 0 {
			continue
		}
		for _, sel := range strings.Split(prelude, ",") {
			s.add(strings.ToLower(strings.TrimSpace(sel)), decls, inMedia)
		}
	}
}

// matchingBrace splits s after an opening brace into the block up to its closing brace
// and what follows; an unclosed block runs to the end.
func matchingBrace(s string) (block, rest string) {
	depth := 1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return s[:i], s[i+1:]
			}
		}
	}
	return s, ""
}

func (s *styleSheet) add(selector string, decls []declaration, uncertain bool) {
	if selector == "" {
		return
	}
	if len(s.rules) == maxStyleRules {
		s.overflow = true
		return
	}
	// The last compound selector is the one the element itself must match.
	last := selector
	if i := strings.LastIndexAny(selector, " >+~\t\n"); i >= 0 {
		last, uncertain = selector[i+1:], true
	}
	if last == "" {
		return
	}
	var c compoundSelector
	specificity := 0
	for _, part := range splitCompound(last) {
		switch {
		case part[0] == '.':
			c.classes = append(c.classes, part[1:])
			specificity += 100
		case part[0] == '#':
			c.id = part[1:]
			specificity += 10000
		case part[0] == ':' || part[0] == '[':
			uncertain = true // a pseudo-class or an attribute condition, not checked
		case part == "*":
		default:
			c.tag = part
			specificity++
		}
	}
	s.rules = append(s.rules, styleRule{match: c, uncertain: uncertain, specificity: specificity, order: len(s.rules), decls: decls})
}

// splitCompound splits "p.a#b:hover[x]" into "p", ".a", "#b", ":hover", "[x]".
func splitCompound(s string) []string {
	var parts []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || strings.IndexByte(".#:[", s[i]) >= 0 {
			if i > start && s[start:i] != ":" {
				parts = append(parts, s[start:i])
			}
			start = i
		}
	}
	return parts
}

func (c *compoundSelector) matches(tag, id string, classes []string) bool {
	if c.tag != "" && c.tag != tag || c.id != "" && c.id != id {
		return false
	}
	for _, want := range c.classes {
		found := false
		for _, have := range classes {
			if have == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// styled is a declaration for an element; uncertain ones apply only where they hide.
type styled struct {
	declaration
	uncertain bool
}

// declarations are what applies to an element, in the order to apply them: the sheet's
// rules by specificity and order, the style attribute, then the !important ones.
func (s *styleSheet) declarations(tag string, attrs map[string]string) []styled {
	sheet := s.matching(tag, attrs)
	style, ok := attrs["style"]
	if !ok {
		return sheet
	}
	var normal, important []styled
	for _, d := range sheet {
		if d.important {
			important = append(important, d)
		} else {
			normal = append(normal, d)
		}
	}
	for _, d := range parseDeclarations(style) {
		if d.important {
			important = append(important, styled{d, false})
		} else {
			normal = append(normal, styled{d, false})
		}
	}
	return append(normal, important...)
}

// matching are the declarations of the rules that match an element, by specificity and
// order, the !important ones last.
func (s *styleSheet) matching(tag string, attrs map[string]string) []styled {
	if len(s.rules) == 0 {
		return nil
	}
	id, class := strings.ToLower(attrs["id"]), strings.ToLower(attrs["class"])
	key := tag + "#" + id + "." + class
	if decls, ok := s.memo[key]; ok {
		return decls
	}
	if s.checks += len(s.rules); s.checks > maxRuleChecks {
		s.overflow = true
		return nil
	}
	classes := strings.Fields(class)
	var matched []*styleRule
	for i := range s.rules {
		if s.rules[i].match.matches(tag, id, classes) {
			matched = append(matched, &s.rules[i])
		}
	}
	sort.SliceStable(matched, func(i, j int) bool { return matched[i].specificity < matched[j].specificity })
	var normal, important []styled
	for _, r := range matched {
		for _, d := range r.decls {
			if d.important {
				important = append(important, styled{d, r.uncertain})
			} else {
				normal = append(normal, styled{d, r.uncertain})
			}
		}
	}
	decls := append(normal, important...)
	if len(s.memo) >= maxMemo || s.memo == nil {
		s.memo = map[string][]styled{}
	}
	s.memo[key] = decls
	return decls
}
