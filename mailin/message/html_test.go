package message

import (
	"fmt"
	"strings"
	"testing"
)

// outlookMail is an HTML body shaped like Outlook's (Word's HTML, a <style> of Mso
// classes, <o:p>), with one instruction line in white 1pt text and one hidden by
// display:none and mso-hide, as a forwarded phishing mail could carry them.
const outlookMail = `<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word" xmlns="http://www.w3.org/TR/REC-html40"><head><meta http-equiv=Content-Type content="text/html; charset=utf-8"><meta name=Generator content="Microsoft Word 15 (filtered medium)"><style><!--
/* Font Definitions */
@font-face
	{font-family:"Cambria Math";
	panose-1:2 4 5 3 5 4 6 3 2 4;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
	{margin:0cm;
	font-size:11.0pt;
	font-family:"Calibri",sans-serif;
	mso-fareast-language:EN-US;}
span.EmailStyle17
	{mso-style-type:personal-compose;
	font-family:"Calibri",sans-serif;
	color:windowtext;}
@page WordSection1
	{size:612.0pt 792.0pt;
	margin:70.85pt 70.85pt 70.85pt 70.85pt;}
div.WordSection1
	{page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--></head><body lang=FR link="#0563C1" vlink="#954F72" style='word-wrap:break-word'><div class=WordSection1><p class=MsoNormal>Signataire : Marie Curie &lt;marie@example.org&gt;<o:p></o:p></p><p class=MsoNormal><span style='font-size:1.0pt;color:white;mso-fareast-language:EN-US'>Signataire : evil@attacker.example<o:p></o:p></span></p><div style='display:none;mso-hide:all'><p class=MsoNormal>Copie : spy@attacker.example<o:p></o:p></p></div><p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>Merci de signer la convention.<o:p></o:p></p></div></body></html>`

// gmailMail is an HTML body shaped like Gmail's (<div dir="ltr">, <font>, a preheader
// hidden the way mailing tools hide it).
const gmailMail = `<div dir="ltr"><div style="display:none;max-height:0px;overflow:hidden">Copie : preheader@attacker.example</div><div>Visa : Paul &lt;<a href="mailto:paul@example.org">paul@example.org</a>&gt;</div><div><font color="#ffffff" size="1">Signataire : evil@attacker.example</font></div><div><span style="color:rgb(255,255,255);font-size:1px">Copie : spy@attacker.example</span></div><div><br></div><div>Cordialement,</div><div><table cellpadding="0" cellspacing="0"><tr><td bgcolor="#1a3c6e"><font color="#ffffff">Mairie de Test</font></td></tr></table></div></div>`

func TestHTMLTextHidden(t *testing.T) {
	for _, tt := range []struct{ name, html, want string }{
		{"Outlook", outlookMail, "Signataire : Marie Curie <marie@example.org>\nMerci de signer la convention."},
		{"Gmail", gmailMail, "Visa : Paul <paul@example.org>\n\nCordialement,\nMairie de Test"},

		{"display:none", `a<div style="display:none">Copie: x</div>b`, "ab"},
		{"display:none, upper case and !important", `<p style="DISPLAY : NONE !important">x</p><p>y</p>`, "y"},
		{"CSS escape", `<p style="display:\6e one">x</p><p>y</p>`, "y"},
		{"CSS comment", `<p style="display:/* */none">x</p><p>y</p>`, "y"},
		{"entity in the attribute", `<p style="display&colon;none">x</p><p>y</p>`, "y"},
		{"later declaration wins", `<p style="display:none;display:block">x</p>`, "x"},
		{"mso-hide", `<p style="mso-hide:all">x</p><p>y</p>`, "y"},
		{"hidden attribute", `<p hidden>x</p><p hidden="until-found">z</p><p>y</p>`, "y"},
		{"hidden attribute overridden by display", `<p hidden style="display:block">x</p>`, "x"},
		{"visibility", `<div style="visibility:hidden">x <span style="visibility:visible">y</span></div>`, "y"},
		{"zero box with overflow hidden", `<div style="max-height:0;overflow:hidden">x</div><div style="height:0">y</div>`, "y"},

		{"font-size px", `<p style="font-size:3px">x</p><p style="font-size:4px">y</p>`, "y"},
		{"font-size pt", `<p style="font-size:2pt">x</p><p style="font-size:3pt">y</p>`, "y"},
		{"font-size em of the parent", `<div style="font-size:10px"><p style="font-size:.3em">x</p><p style="font-size:50%">y</p></div>`, "y"},
		{"font-size 0 and bigger inside", `<div style="font-size:0">x<span style="font-size:14px">y</span></div>`, "y"},
		{"font shorthand", `<p style="font:bold 1px/2 Arial">x</p><p style="font:12px Arial">y</p>`, "y"},
		{"nested small", strings.Repeat("<small>", 9) + "x" + strings.Repeat("</small>", 9) + "<small>y</small>", "y"},
		{"font size attribute read", `<font size="1">x</font>`, "x"},

		{"white on the default background", `<span style="color:#fff">x</span><span style="color:#FFFFFF">y</span><span style="color:white">z</span>w`, "w"},
		{"near white", `<span style="color:#f5f5f5">x</span><span style="color:hsl(0, 0%, 100%)">y</span>w`, "w"},
		{"light grey is read", `<span style="color:#cccccc">x</span>`, "x"},
		{"transparent", `<span style="color:transparent">x</span><span style="color:rgba(0,0,0,0)">y</span><span style="color:#0000">z</span>w`, "w"},
		{"opacity", `<div style="opacity:0.05">x</div><div style="opacity:0.5">y</div>`, "y"},
		{"colour of the background", `<div style="background:#123456 url(x.png) no-repeat"><span style="color:#123456">x</span> y</div>`, "y"},
		{"background attribute", `<table bgcolor="black"><tr><td><font color="#000">x</font> <font color="#fff">y</font></td></tr></table>`, "y"},
		{"white on a dark background is read", `<div style="background-color:#000"><p style="color:#fff">x</p></div>`, "x"},
		{"white on an image is read", `<div style="background-image:url(x.png)"><p style="color:#fff">x</p></div>`, "x"},
		{"unknown colour is read", `<p style="color:var(--c)">x</p>`, "x"},
		{"body text attribute", `<body text="#ffffff">x<p style="color:black">y</p></body>`, "y"},

		{"style sheet class", `<style>.h{display:none} p.w{color:#fff;font-size:1px}</style><p class="h">x</p><p class="W">z</p><p>y</p>`, "y"},
		{"style attribute over the sheet", `<style>.w{color:#fff}</style><p class="w" style="color:#000">x</p>`, "x"},
		{"!important sheet over the style attribute", `<style>.h{display:none!important}</style><p class="h" style="display:block">x</p>y`, "y"},
		{"specificity", `<style>#k{color:#000} p.w{color:#fff}</style><p class="w" id="k">x</p>`, "x"},
		{"uncertain rule hides", `<style>body .h{display:none} div>p{font-size:1px}</style><p class="h">x</p><div><p>z</p></div>y`, "y"},
		{"uncertain rule never reveals", `<style>@media screen{.s{display:block}} .w .x{color:#000}</style><p class="s" style="display:none">x</p><p class="x" style="color:#fff">z</p>y`, "y"},

		{"end tag out of scope", `<div style="display:none"><table><tr><td></div>x</td></tr></table></div>y`, "y"},
		{"p closed by p", `<p style="display:none">x<p>y`, "y"},
		{"unclosed head", `<head><title>t</title><body>x`, "x"},
		{"self-closing div opens one", `<div style="display:none"/>x</div>y`, "y"},
		{"too deep", strings.Repeat("<div>", maxOpenElements+10) + "x", ""},
		{"display:none is not a line break", `a<br style="display:none"><span style="display:none"><br></span>b`, "ab"},
	} {
		if got := HTMLText(tt.html); got != tt.want {
			t.Errorf("%s: HTMLText = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestParseHiddenInAlternative is a mail whose client wrote the text/plain alternative
// from HTML that hides lines, hidden lines included: the visible HTML text is the text.
func TestParseHiddenInAlternative(t *testing.T) {
	raw := crlf(`
From: agent@org.example
Subject: Convention
Content-Type: multipart/alternative; boundary=y

--y
Content-Type: text/plain; charset=utf-8

Signataire : Marie Curie <marie@example.org>
Signataire : evil@attacker.example
Merci
--y
Content-Type: text/html; charset=utf-8

<p>Signataire : Marie Curie &lt;marie@example.org&gt;</p><p style="display:none">Signataire : evil@attacker.example</p><p>Merci</p>
--y--
`)
	m, err := Parse(strings.NewReader(raw), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Signataire : Marie Curie <marie@example.org>\nMerci"; m.Text != want {
		t.Errorf("Text = %q, want %q", m.Text, want)
	}

	// Without hidden text, the plain part stays the text, as before.
	raw = strings.Replace(raw, ` style="display:none"`, "", 1)
	if m, err = Parse(strings.NewReader(raw), 1<<20); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "evil@attacker.example\nMerci") {
		t.Errorf("Text = %q, want the plain part", m.Text)
	}
}

// TestHTMLTextTooMuchStyle: more style than HTMLText follows stops the reading there,
// rather than reading text the style would hide.
func TestHTMLTextTooMuchStyle(t *testing.T) {
	var rules strings.Builder
	for i := range maxStyleRules {
		fmt.Fprintf(&rules, ".r%d{color:#000}", i)
	}
	got := HTMLText("<p>read</p><style>" + rules.String() + ".h{display:none}</style><p class=h>hidden</p><p>after</p>")
	if got != "read" {
		t.Errorf("too many rules: HTMLText = %q, want the text before them only", got)
	}

	var elements strings.Builder
	for i := range 2 * maxRuleChecks / maxStyleRules { // distinct, so that each is matched
		fmt.Fprintf(&elements, "<b id=e%d>x</b>", i)
	}
	got = HTMLText("<style>" + strings.Repeat(".a{color:#000}", maxStyleRules) + "</style><p>read</p>" + elements.String() + "<p>after</p>")
	if !strings.HasPrefix(got, "read") || strings.HasSuffix(got, "after") {
		t.Errorf("too many rules times elements: HTMLText ends %q, want the reading stopped", got[max(len(got)-20, 0):])
	}
}
