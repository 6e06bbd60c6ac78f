package message

import "strings"

// unflow undoes RFC 3676 format=flowed: Thunderbird and Apple Mail wrap
// long lines by ending them with a space, which would cut an instruction
// line with many addresses in two. Lines are joined within the same quote
// depth; space-stuffing is removed; with delsp=yes the soft-break space is
// deleted too.
func unflow(text string, delsp bool) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var out []string
	joining, joinDepth := false, 0
	for _, line := range lines {
		depth := len(line) - len(strings.TrimLeft(line, ">"))
		content := strings.TrimPrefix(line[depth:], " ") // space-stuffing
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		if joining && depth == joinDepth {
			out[len(out)-1] += content
		} else {
			out = append(out, line[:depth]+prefixSpace(depth)+content)
		}
		joining, joinDepth = flowed, depth
	}
	return strings.Join(out, "\n")
}

// prefixSpace keeps a space between quote marks and quoted text, as
// clients show it.
func prefixSpace(depth int) string {
	if depth > 0 {
		return " "
	}
	return ""
}
