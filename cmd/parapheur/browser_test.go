package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parapheur/parapheur/deploy/testrig"
)

// shotsEnv names a directory where the browser tests also save the pages
// they pass through as PNG files, for people to look at (PARAPHEUR_SHOTS=
// /tmp/parapheur-shots go test -run TestSigningCeremony ./cmd/parapheur).
const shotsEnv = "PARAPHEUR_SHOTS"

// pageWait bounds one step in the browser: a page load, a form post.
const pageWait = 30 * time.Second

// inBrowser drives the pages in Chromium as people do: the link from their
// mailbox, the code from their mailbox, a tap on the button. The core path
// runs with JavaScript off on a 360×740 phone.
func (c *ceremonyRig) inBrowser(t *testing.T) {
	browser := testrig.ChromiumRig(t)

	t.Run("sign on a phone without JavaScript, in French", func(t *testing.T) {
		const title = "Bail du local associatif"
		c.submit(t, title, "Signataire : Sophie Première <signer1@example.com>")
		link := c.link(t, c.read(t, "signer1", "À signer : "+title), "/s/")
		p := c.open(t, browser, phoneWithoutJS("fr-FR,fr;q=0.9"), link)
		p.expectLang("fr")
		if got := p.text("h1"); got != title {
			p.failf("the page's heading is %q, want the title %q", got, title)
		}
		p.fitsWidth(360)
		p.shot("signer-fr-phone")

		p.askCode()
		code := codeIn(t, c.read(t, "signer1", "Votre code de confirmation – "+title))
		p.sign(code)
		p.shot("signer-fr-phone-signed")
		if st := c.holder(link).state(t); st.Recipient.State != "signed" {
			t.Fatalf("after signing in the page, the API says %s", st.Recipient.State)
		}

		// The agent follows the envelope from the link in the acknowledgement.
		status := c.open(t, browser, phoneWithoutJS("fr"),
			c.link(t, c.read(t, "bob", "Enregistré : "+title), "/e/"))
		status.expectLang("fr")
		if !strings.Contains(status.text("main"), "Sophie Première") || !status.has(".state-signed") {
			status.failf("the status page does not show Sophie Première as signed")
		}
		status.fitsWidth(360)
		status.shot("status-fr-phone")
	})

	t.Run("decline in English, with the language switch", func(t *testing.T) {
		const title = "Supplier agreement"
		c.submit(t, title, "Language: en", "Signer: Paul Second <signer2@example.com>")
		link := c.link(t, c.read(t, "signer2", "Please sign: "+title), "/s/")
		// The envelope's language wins over the browser's.
		p := c.open(t, browser, phoneWithoutJS("fr-FR,fr;q=0.9"), link)
		p.expectLang("en")
		p.shot("signer-en-phone")
		p.submit(`a[hreflang="fr"]`)
		p.expectLang("fr")
		p.submit(`a[hreflang="en"]`)
		p.expectLang("en")

		p.askCode()
		code := codeIn(t, c.read(t, "signer2", "Your confirmation code – "+title))
		p.open("#decline-more")
		p.do(chromedp.SendKeys(chromedp.CSS("#decline-form [name=code]"), code),
			chromedp.SendKeys(chromedp.CSS("#decline-form [name=reason]"), "The amount in article 3 is wrong"))
		p.submit("#decline-form button")
		p.confirmed()
		p.shot("signer-en-phone-declined")
		notice := c.read(t, "bob", "Declined: "+title)
		if !strings.Contains(notice.text, "The amount in article 3 is wrong") {
			t.Errorf("the sender's decline notice does not give the reason:\n%s", notice.text)
		}
	})

	t.Run("delegate, then the delegate signs", func(t *testing.T) {
		const title = "Avenant n° 2"
		c.submit(t, title, "Signataire : Élise Troisième <signer3@example.com>")
		link := c.link(t, c.read(t, "signer3", "À signer : "+title), "/s/")
		p := c.open(t, browser, testrig.Desktop, link)
		p.askCode()
		code := codeIn(t, c.read(t, "signer3", "Votre code de confirmation – "+title))
		p.open("#delegate-more")
		p.do(chromedp.SendKeys(chromedp.CSS("#delegate-form [name=code]"), code),
			chromedp.SendKeys(chromedp.CSS("#delegate-form [name=name]"), "Denise Déléguée"),
			chromedp.SendKeys(chromedp.CSS("#delegate-form [name=email]"), "delegate@example.com"),
			chromedp.SendKeys(chromedp.CSS("#delegate-form [name=reason]"), "En congé jusqu'au 15"))
		p.submit("#delegate-form button")
		p.confirmed()
		p.shot("signer-fr-desktop-delegated")
		if !strings.Contains(p.text("#confirmation"), "Denise Déléguée") {
			p.failf("the confirmation does not name the delegate")
		}
		// The sender is told, with the reason.
		if notice := c.read(t, "bob", "Délégation : "+title); !strings.Contains(notice.text, "En congé jusqu'au 15") ||
			!strings.Contains(notice.text, "delegate@example.com") {
			t.Errorf("the sender's delegation notice does not name the delegate and the reason:\n%s", notice.text)
		}

		// The delegate's own invitation; her browser asks for English, the
		// envelope did not choose: the page is in English.
		delegated := c.link(t, c.read(t, "delegate", "À signer : "+title), "/s/")
		if delegated == link {
			t.Fatal("the delegate was sent the delegator's link")
		}
		d := c.open(t, browser, phone("en-GB,en;q=0.8"), delegated)
		d.expectLang("en")
		d.askCode()
		code = codeIn(t, c.read(t, "delegate", "Votre code de confirmation – "+title))
		d.sign(code)
		if st := c.holder(delegated).state(t); st.Recipient.State != "signed" || st.Recipient.Email != "delegate@example.com" {
			t.Fatalf("the delegate after signing: %s %s", st.Recipient.Email, st.Recipient.State)
		}
	})
}

// phone is a 360×740 phone whose browser asks for acceptLanguage.
func phone(acceptLanguage string) testrig.View {
	v := testrig.Phone
	v.AcceptLanguage = acceptLanguage
	return v
}

// phoneWithoutJS is that phone with JavaScript turned off.
func phoneWithoutJS(acceptLanguage string) testrig.View {
	v := phone(acceptLanguage)
	v.NoJavaScript = true
	return v
}

// page is a browser tab of a test, showing the gateway's pages.
type page struct {
	t   *testing.T
	tab context.Context
}

// open opens url in a new private tab of browser, seen through v.
func (c *ceremonyRig) open(t *testing.T, browser *testrig.Chromium, v testrig.View, url string) page {
	t.Helper()
	p := page{t: t, tab: browser.Tab(t, v)}
	p.do(chromedp.Navigate(url))
	return p
}

// do runs steps in the tab and fails the test if one fails.
func (p page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.failf("%v", err)
	}
}

// submit clicks the element sel (a button, a link) and waits for the page
// it leads to.
func (p page) submit(sel string) {
	p.t.Helper()
	p.do(testrig.Follow(sel))
}

// has tells whether the page has an element matching sel, without waiting.
func (p page) has(sel string) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(sel), chromedp.AtLeast(0)))
	if err != nil {
		p.t.Fatal(err)
	}
	return len(nodes) > 0
}

// text is the visible text of the first element matching sel, which must
// be on the page.
func (p page) text(sel string) string {
	p.t.Helper()
	if !p.has(sel) {
		p.failf("no %s on the page", sel)
	}
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

// askCode presses the button that sends a one-time code: the page comes
// back with the forms to act, and no error.
func (p page) askCode() {
	p.t.Helper()
	p.submit("#code-form button")
	if p.has("#error") || !p.has("#sign-form") {
		p.failf("no code sent")
	}
}

// sign enters code, ticks the consent box and presses Sign (or Approve):
// the page confirms it.
func (p page) sign(code string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#sign-form [name=code]"), code),
		chromedp.Click(chromedp.CSS("#sign-form [name=consent]")))
	p.submit("#sign-form button")
	p.confirmed()
}

// confirmed expects the confirmation of an action, and no error.
func (p page) confirmed() {
	p.t.Helper()
	if p.has("#error") || !p.has("#confirmation") {
		p.failf("no confirmation after the action")
	}
}

// expectLang expects the page to be in lang.
func (p page) expectLang(lang string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("html"), "lang"))
	if err != nil {
		p.t.Fatal(err)
	}
	if got.Value != lang {
		p.failf("the page is in %q, want %q", got.Value, lang)
	}
}

// fitsWidth expects the page to need no sideways scrolling on a screen
// width CSS pixels wide.
func (p page) fitsWidth(width int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	// Read over DevTools, which runs even where the page's scripts may not.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		p.t.Fatal(err)
	}
	if got > width {
		p.failf("the page is %d px wide on a %d px screen: the reader must scroll sideways", got, width)
	}
}

// failf fails the test with what the page says (its error, its text); the
// tab saves a screenshot.
func (p page) failf(format string, args ...any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	url, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	p.t.Fatalf("%s\npage %s:\n%s", fmt.Sprintf(format, args...), url, body)
}

// shot saves the page under the name in $PARAPHEUR_SHOTS, when set.
func (p page) shot(name string) {
	p.t.Helper()
	dir := os.Getenv(shotsEnv)
	if dir == "" {
		return
	}
	path := filepath.Join(dir, name+".png")
	if err := testrig.Screenshot(p.tab, path); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("page saved as %s", path)
}
