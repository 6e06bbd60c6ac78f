package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/parapheur/parapheur/cmd/parapheur/demo"
	"github.com/parapheur/parapheur/deploy/testrig"
	"github.com/parapheur/parapheur/signing/certificate"
	"github.com/parapheur/parapheur/signing/pki"
	"github.com/parapheur/parapheur/signing/signtest"
	"github.com/parapheur/parapheur/workflow/engine"
)

// demoProcess is one "parapheur demo" run by a test, as a newcomer runs
// it: a server whose output holds the URL it printed.
type demoProcess struct {
	*server
	url string // the URL it printed
}

// startDemo runs "parapheur demo" in dir on listen with args, and waits
// for the URL it prints to answer.
func startDemo(t *testing.T, dir, listen string, args ...string) demoProcess {
	t.Helper()
	d := demoProcess{server: &server{listen: listen, exited: make(chan error, 1), logs: &lockedBuffer{}}}
	d.cmd = exec.Command(binary, append([]string{"demo", "--listen", listen}, args...)...)
	d.cmd.Dir = dir
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // nothing configures the demo
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("demo output:\n%s", d.logs.String())
		}
	})
	printed := regexp.MustCompile(`open (http://\S+/demo) `)
	eventually(t, 60*time.Second, "the demo prints its URL", func() bool {
		select {
		case err := <-d.exited:
			t.Fatalf("the demo exited: %v\n%s", err, d.logs.String())
		default:
		}
		m := printed.FindStringSubmatch(d.logs.String())
		if m != nil {
			d.url = m[1]
		}
		return m != nil
	})
	if resp, body := getResponse(t, d.url); resp.StatusCode != 200 || !strings.Contains(string(body), "open-mailbox") {
		t.Fatalf("the printed URL %s answers %s:\n%s", d.url, resp.Status, body)
	}
	return d
}

// messages is the web mailbox's JSON list.
func (d demoProcess) messages(t *testing.T) []struct{ ID, Subject string } {
	t.Helper()
	resp, body := getResponse(t, strings.TrimSuffix(d.url, "/demo")+"/demo/api/messages")
	var list []struct{ ID, Subject string }
	if err := json.Unmarshal(body, &list); resp.StatusCode != 200 || err != nil {
		t.Fatalf("the mailbox's JSON: %s %v\n%s", resp.Status, err, body)
	}
	return list
}

// TestDemoInBrowser runs "parapheur demo" as a newcomer does and completes
// the sample envelope in Chromium through the web mailbox alone: each
// person opens their invitation in the mailbox, follows its link, asks
// for a code, reads it in the mailbox, enters it and acts.
func TestDemoInBrowser(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir, freeAddr(t))
	browser := testrig.ChromiumRig(t)
	const title = "Convention de partenariat – Les Jardins partagés"

	landing := page{t: t, tab: browser.Tab(t, testrig.Desktop)}
	landing.do(chromedp.Navigate(d.url))
	landing.expectLang("fr")
	landing.shot("demo-landing")

	// The people read their mail in a mailbox without JavaScript, which
	// never reloads itself under a click: they reload it by hand.
	mailbox := page{t: t, tab: browser.Tab(t, desktopWithoutJS)}
	mailbox.do(chromedp.Navigate(d.url))
	mailbox.submit("#open-mailbox")
	mailbox.read(demo.Approver, "À viser : "+title)
	mailbox.do(chromedp.Navigate(d.url + "/mail"))
	mailbox.shot("demo-mailbox")

	act := func(who demo.Person, invitation string) {
		inbox := mailbox.read(who, invitation+title)
		if who == demo.Approver {
			inbox.shot("demo-mail-invitation")
		}
		// The signer's own tab opens the mail and clicks the button in
		// its HTML, in the sandboxed frame.
		signer := page{t: t, tab: browser.Tab(t, testrig.Desktop)}
		signer.do(chromedp.Navigate(inbox.location()))
		signer.clickInFrame(`a[href*="/s/"]`, "#code-form")
		if got := signer.text("h1"); got != title {
			signer.failf("the signing page's heading is %q, want %q", got, title)
		}
		signer.askCode()
		code := mailbox.read(who, "Votre code de confirmation – "+title)
		code.open("#text")
		text := code.text("#text pre")
		digits := regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`).FindStringSubmatch(text)
		if digits == nil {
			code.failf("no six-digit code in %s's code mail:\n%s", who.Email, text)
		}
		signer.do(chromedp.SendKeys(chromedp.CSS("#sign-form input[name=code]"), digits[1]),
			chromedp.Click(chromedp.CSS("#sign-form input[name=consent]")))
		signer.submit("#sign-form button")
		signer.confirmed()
	}
	act(demo.Approver, "À viser : ")
	act(demo.President, "À signer : ")
	act(demo.Mayor, "À signer : ")

	// The final mail brings the agent the sealed convention and the
	// certificate, which every validator accepts.
	final := mailbox.read(demo.Agent, "Terminé : "+title)
	final.shot("demo-mail-completion")
	files := final.attachments()
	envelope := engine.EnvelopeID(demo.SampleMessageID)
	certName, _ := certificate.FileName(envelope, "fr")
	ca := filepath.Join(dir, "parapheur-demo", "keys", pki.CACertFile)
	t.Cleanup(signtest.Cleanup)
	for name, sigs := range map[string]int{"convention-jardins-partages.pdf": 3, certName: 1} {
		url, ok := files[name]
		if !ok {
			final.failf("the final mail does not attach %s: %v", name, files)
		}
		resp, pdf := getResponse(t, url)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
			t.Fatalf("downloading %s from the mailbox: %s %s", name, resp.Status, resp.Header.Get("Content-Type"))
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		signtest.Validate(t, path, signtest.Expect{Signatures: sigs, CAFile: ca})
	}

	landing.do(chromedp.Navigate(d.url))
	for _, state := range []string{"terminée", "visé", "signé", "remis"} {
		if !strings.Contains(landing.text("#sample"), state) {
			landing.failf("the landing page does not show the sample as %s", state)
		}
	}
	landing.shot("demo-landing-done")

	before := len(d.messages(t))
	d.stop(t)
	again := startDemo(t, dir, d.listen)
	if after := len(again.messages(t)); after != before {
		t.Errorf("the web mailbox held %d mails before the restart, %d after", before, after)
	}

	// After the restart, a visitor's own document, from the form, while
	// another tab shows the mailbox: the gateway takes it from the new
	// mailbox, and the list shows the acknowledgement by itself.
	const own = "Avenant n° 1 à la convention"
	ack := `#mails a[title="Enregistré : ` + own + `"]`
	watcher := page{t: t, tab: browser.Tab(t, testrig.Desktop)}
	watcher.do(chromedp.Navigate(d.url + "/mail?to=" + demo.Mayor.Email))
	if watcher.has(ack) {
		t.Fatal("the acknowledgement is in the mailbox before the submission")
	}
	landing.do(chromedp.Navigate(d.url),
		chromedp.SetValue(chromedp.CSS("#submit select[name=from]"), demo.Mayor.Email),
		chromedp.SetValue(chromedp.CSS("#submit input[name=subject]"), own),
		chromedp.SetValue(chromedp.CSS("#submit textarea"), "Signataire : "+demo.President.String()))
	landing.submit("#submit button")
	watcher.waitFor(ack)
	landing.waitFor(`#mails a[title="À signer : ` + own + `"]`)
}

// desktopWithoutJS is a desktop browser with JavaScript turned off.
var desktopWithoutJS = testrig.View{Width: testrig.Desktop.Width, Height: testrig.Desktop.Height, NoJavaScript: true}

// TestDemoPortInUse runs the demo on a port another program holds: it
// says so, and how to choose another.
func TestDemoPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := parapheur(t, []string{"PATH=" + os.Getenv("PATH")}, "demo", "--listen", ln.Addr().String())
	if r.code != exitFailure || !strings.Contains(r.stderr, "address already in use: choose another port with --listen") ||
		strings.Contains(r.stdout, "open http") {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// waitFor waits until an element matching sel is on the page, which may
// reload itself meanwhile (the mailbox's list does when mail arrives).
func (p page) waitFor(sel string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, mailWait)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		p.failf("waiting for %s: %v", sel, err)
	}
}

// open unfolds the closed <details> element sel by clicking its summary,
// as a reader does. The mail's HTML frame above it may still be loading
// and move the summary under the click, so the click is repeated until
// the element is open.
func (p page) open(sel string) {
	p.t.Helper()
	for try := 0; try < 5 && !p.has(sel+"[open]"); try++ {
		p.do(chromedp.Click(chromedp.CSS(sel + " > summary")))
	}
	if !p.has(sel + "[open]") {
		p.failf("%s does not open under a click on its summary", sel)
	}
}

// clickInFrame clicks the element sel in the mail's HTML, which the
// mailbox shows in a sandboxed frame: Chromium runs it in a process of its
// own, a target of its own, where the click happens. The link opens in
// the whole tab, whose new page must show want. Another tab may show the
// same mail: the frame is the one in p's tab.
func (p page) clickInFrame(sel, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	frameURL := p.location() + "/html"
	tab := chromedp.FromContext(p.tab).Target.TargetID
	var frame target.ID
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for ; frame == ""; <-poll.C {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			p.failf("no frame of the mail's HTML: %v", err)
		}
		for _, info := range infos {
			if info.Type == "iframe" && info.URL == frameURL && info.ParentID == tab {
				frame = info.TargetID
			}
		}
	}
	frameCtx, cancelFrame := chromedp.NewContext(ctx, chromedp.WithTargetID(frame), chromedp.WithDetachOnCancel())
	defer cancelFrame()
	if _, err := chromedp.Run(frameCtx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.failf("clicking %s in the mail's HTML: %v", sel, err)
	}
	p.waitFor(want)
}

// attribute is the attribute name of the first element matching sel.
func (p page) attribute(sel, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil || !v.Exists {
		p.failf("no %s on %s: %v", name, sel, err)
	}
	return v.Value
}

// read opens, in the mailbox's tab, the mail to who whose subject is
// subject, reloading the list until it arrives.
func (p page) read(who demo.Person, subject string) page {
	p.t.Helper()
	sel := `#mails a[title="` + subject + `"]`
	eventually(p.t, mailWait, who.Email+" receives "+subject, func() bool {
		p.do(chromedp.Navigate(p.origin() + "/demo/mail?to=" + who.Email))
		return p.has(sel)
	})
	p.submit(sel)
	return p
}

// attachments are the files listed on a mail's page, by name, with the
// URL of each, read over DevTools (the tab may run no script).
func (p page) attachments() map[string]string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	list, err := chromedp.Run(ctx, chromedp.Evaluate[[][2]string](
		`[...document.querySelectorAll("#attachments a.attachment")].map(a => [a.textContent, a.href])`))
	if err != nil {
		p.t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range list {
		files[f[0]] = f[1]
	}
	return files
}

// location is the page's URL; origin its scheme and host.
func (p page) location() string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, pageWait)
	defer cancel()
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return url
}

func (p page) origin() string {
	u := p.location()
	return u[:strings.Index(u[len("http://"):], "/")+len("http://")]
}

// The demo prints where its mail server takes mail, so that a script can
// send the gateway mails of its own: a submission sent there is
// acknowledged, as the web mailbox's JSON shows.
func TestDemoAnnouncesItsMailServer(t *testing.T) {
	d := startDemo(t, t.TempDir(), freeAddr(t))
	m := regexp.MustCompile(`takes mail at smtp://(\S+) `).FindStringSubmatch(d.logs.String())
	if m == nil {
		t.Fatalf("the demo does not say where its mail server is:\n%s", d.logs.String())
	}
	pdf, err := demo.SamplePDF()
	if err != nil {
		t.Fatal(err)
	}
	raw := "From: Camille Agent <agent@" + demo.Domain + ">\r\nTo: parapheur@" + demo.Domain + "\r\n" +
		"Subject: Avenant par SMTP\r\nMessage-ID: <avenant-smtp@client.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Signataire : Jean Martin <maire@" + demo.Domain + ">\r\n--b\r\n" +
		"Content-Type: application/pdf; name=avenant.pdf\r\nContent-Disposition: attachment; filename=avenant.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + wrap76(base64.StdEncoding.EncodeToString(pdf)) + "--b--\r\n"
	if err := smtp.SendMail(m[1], nil, "agent@"+demo.Domain, []string{"parapheur@" + demo.Domain}, []byte(raw)); err != nil {
		t.Fatalf("sending to the announced smtp://%s: %v", m[1], err)
	}
	eventually(t, 30*time.Second, "the acknowledgement of the mail sent over SMTP", func() bool {
		for _, msg := range d.messages(t) {
			if msg.Subject == "Enregistré : Avenant par SMTP" {
				return true
			}
		}
		return false
	})
}

// wrap76 cuts base64 text into the 76-character lines of RFC 2045 §6.8.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}
