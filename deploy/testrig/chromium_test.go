package testrig

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestChromium drives the real browser through a page as the gateway's tests do: a phone
// without JavaScript that sends French, a desktop with it, tabs that share no cookies, and
// the screenshot of a failed test.
func TestChromium(t *testing.T) {
	site := &testSite{}
	srv := httptest.NewServer(site)
	defer srv.Close()
	c := ChromiumRig(t)

	t.Run("phone without JavaScript", func(t *testing.T) {
		tab := c.Tab(t, View{Width: Phone.Width, Height: Phone.Height, Mobile: true, NoJavaScript: true, AcceptLanguage: "fr-FR, en;q=0.5"})
		ctx, cancel := context.WithTimeout(tab, time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/form")); err != nil {
			t.Fatal(err)
		}
		if got := site.acceptLanguage(); got != "fr-FR, en;q=0.5" {
			t.Errorf("the server saw Accept-Language %q", got)
		}
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
		if err != nil || width != 360 {
			t.Errorf("window.innerWidth = %d (%v), want 360", width, err)
		}
		if got, err := chromedp.Run(ctx, chromedp.Text(ID("script"))); err != nil || got != "off" {
			t.Errorf("the page's script ran: #script says %q (%v)", got, err)
		}
		// A real form post, as a reader without JavaScript sends it: keys typed, then a
		// tap on the button.
		if err := chromedp.Do(ctx, chromedp.SendKeys(ID("code"), "123456"), Follow("#code-form button")); err != nil {
			t.Fatal(err)
		}
		if got, err := chromedp.Run(ctx, chromedp.Text(ID("confirmation"))); err != nil || got != "code 123456" {
			t.Errorf("after the post the page says %q (%v)", got, err)
		}
	})

	t.Run("desktop", func(t *testing.T) {
		tab := c.Tab(t, Desktop)
		ctx, cancel := context.WithTimeout(tab, time.Minute)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/form")); err != nil {
			t.Fatal(err)
		}
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
		if err != nil || width != 1280 {
			t.Errorf("window.innerWidth = %d (%v), want 1280", width, err)
		}
		if got, err := chromedp.Run(ctx, chromedp.Text(ID("script"))); err != nil || got != "on" {
			t.Errorf("the page's script did not run: #script says %q (%v)", got, err)
		}
	})

	t.Run("tabs share no cookies", func(t *testing.T) {
		first, second := c.Tab(t, Desktop), c.Tab(t, Desktop)
		for i, tab := range []context.Context{first, second} {
			ctx, cancel := context.WithTimeout(tab, time.Minute)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/cookie")); err != nil {
				t.Fatal(err)
			}
			got, err := chromedp.Run(ctx, chromedp.Text(ID("cookie")))
			if err != nil || got != "none" {
				t.Errorf("tab %d was sent the cookie %q (%v)", i+1, got, err)
			}
		}
	})

	t.Run("screenshot on failure", func(t *testing.T) {
		c.ScreenshotDir = t.TempDir()
		failed := &failedTB{}
		t.Run("failing", func(t *testing.T) {
			failed.TB = t
			tab := c.Tab(failed, Phone)
			ctx, cancel := context.WithTimeout(tab, time.Minute)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/form")); err != nil {
				t.Fatal(err)
			}
		}) // the cleanups ran: the screenshot is taken, the tab closed
		shots, _ := filepath.Glob(filepath.Join(c.ScreenshotDir, "*.png"))
		if len(shots) != 1 {
			t.Fatalf("%d screenshots in %s, want 1", len(shots), c.ScreenshotDir)
		}
		png, err := os.ReadFile(shots[0])
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("%s is not a PNG (%v)", shots[0], err)
		}
		if !strings.HasPrefix(filepath.Base(shots[0]), "TestChromium_screenshot_on_failure_failing-") {
			t.Errorf("the screenshot %s is not named after its test", shots[0])
		}
		if log := strings.Join(failed.logs, "\n"); !strings.Contains(log, shots[0]) {
			t.Errorf("the log does not name the screenshot %s:\n%s", shots[0], log)
		}
	})
}

// ID spares the tests the package name.
type ID = chromedp.ID

// failedTB is a test that reports itself failed, so that its cleanups do what they do
// after a failure, while the real test stays green; it keeps what is logged.
type failedTB struct {
	testing.TB
	logs []string
}

func (f *failedTB) Failed() bool { return true }

func (f *failedTB) Logf(format string, args ...any) {
	f.TB.Helper()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
	f.TB.Logf(format, args...)
}

// testSite serves a form, the page its post leads to, and a page that sets a cookie.
type testSite struct {
	mu       sync.Mutex
	language string
}

func (s *testSite) acceptLanguage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.language
}

func (s *testSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	const head = `<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title>`
	switch r.URL.Path {
	case "/form":
		s.mu.Lock()
		s.language = r.Header.Get("Accept-Language")
		s.mu.Unlock()
		fmt.Fprint(w, head+`<p id="script">off</p><script>document.getElementById("script").textContent = "on"</script>
<form id="code-form" method="post" action="/done"><label>Code <input id="code" name="code"></label><button>Send</button></form>`)
	case "/done":
		fmt.Fprintf(w, head+`<p id="confirmation">code %s</p>`, html.EscapeString(r.PostFormValue("code")))
	case "/cookie":
		got := "none"
		if c, err := r.Cookie("seen"); err == nil {
			got = c.Value
		}
		http.SetCookie(w, &http.Cookie{Name: "seen", Value: "yes", Path: "/"})
		fmt.Fprintf(w, head+`<p id="cookie">%s</p>`, got)
	default:
		http.NotFound(w, r)
	}
}
