package testrig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPackage is the Debian package of the browser the page tests drive.
const chromiumPackage = "chromium"

// ScreenshotsEnv names the directory where [Chromium.Tab] saves the page of a failed test;
// without it, the directory is testrig-screenshots in the test's working directory (the
// package directory under go test).
const ScreenshotsEnv = "TESTRIG_SCREENSHOTS"

// browserTimeout bounds one step of a test in the browser (start, tab set-up, a screenshot):
// generous, because the machine running the tests may be busy.
const browserTimeout = 30 * time.Second

// Chromium is a headless Debian Chromium driven over the DevTools protocol (chromedp), on a
// temporary profile that is removed when it stops. Tests share one and each opens its own
// tabs with [Chromium.Tab]: a tab has its own cookies and cache, like a private window.
type Chromium struct {
	// ScreenshotDir is where a failed test's tab is saved; see [ScreenshotsEnv].
	ScreenshotDir string

	browser      context.Context // the first tab's chromedp context, which owns the process
	closeBrowser context.CancelFunc
	stopAlloc    context.CancelFunc
}

// StartChromium starts a headless Chromium, without its sandbox when running as root (the
// sandbox refuses root). Stop it with [Chromium.Stop].
func StartChromium() (*Chromium, error) {
	path, err := findBinary("chromium", chromiumPackage)
	if err != nil {
		return nil, err
	}
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		dir = "testrig-screenshots"
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("testrig: %w", err)
	}
	// The defaults are headless with a temporary profile, which chromedp removes, after
	// killing any child process of the browser still using it, when the browser stops.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, closeBrowser := chromedp.NewContext(alloc)
	c := &Chromium{ScreenshotDir: dir, browser: browser, closeBrowser: closeBrowser, stopAlloc: stopAlloc}
	if err := open(browser); err != nil {
		c.Stop()
		return nil, fmt.Errorf("testrig: starting %s: %w", path, err)
	}
	return c, nil
}

// open makes the first chromedp run on a new context, which starts the browser or opens the
// tab. That run's context must have no deadline: the browser or the tab would live only as
// long as it. So the wait is bounded here instead.
func open(ctx context.Context) error {
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		return err
	case <-time.After(browserTimeout):
		return fmt.Errorf("not open within %v", browserTimeout)
	}
}

// ChromiumRig starts a Chromium for t and stops it when t ends. It fails t if the browser
// cannot start.
func ChromiumRig(t testing.TB) *Chromium {
	t.Helper()
	c, err := StartChromium()
	return stopAtEnd(t, c, err)
}

// Stop closes the browser and waits until its processes are gone and its profile removed.
func (c *Chromium) Stop() error {
	ctx, cancel := context.WithTimeout(c.browser, stopTimeout)
	defer cancel()
	err := chromedp.Cancel(ctx) // asks the browser to close; kills it at the deadline
	c.closeBrowser()
	c.stopAlloc() // waits for the process and removes the profile
	if errors.Is(err, context.Canceled) {
		err = nil // it was not running
	}
	if err != nil {
		return fmt.Errorf("testrig: stopping chromium: %w", err)
	}
	return nil
}

// View is how a tab shows pages and what it tells the server.
type View struct {
	// Width and Height are the viewport in CSS pixels.
	Width, Height int64
	// Mobile emulates a phone: the page's meta viewport applies, as on a real phone.
	Mobile bool
	// NoJavaScript disables scripts in the page, as a reader who turned them off; the
	// test still reads the page over DevTools.
	NoJavaScript bool
	// AcceptLanguage, when not empty, is the Accept-Language header of every request.
	AcceptLanguage string
}

// Phone is a 360×740 phone, the narrowest screen the pages are made for.
var Phone = View{Width: 360, Height: 740, Mobile: true}

// Desktop is a laptop's browser window.
var Desktop = View{Width: 1280, Height: 800}

// Tab opens a tab in a context of its own (cookies, cache and storage of its own) showing
// pages as v says, and closes it when t ends. If t failed, the page the tab shows is
// first saved as a PNG under c.ScreenshotDir, and the file is named in t's log. Run steps
// in the tab with chromedp.Do or chromedp.Run, under a context with a deadline derived
// from the returned one.
func (c *Chromium) Tab(t testing.TB, v View) context.Context {
	t.Helper()
	tab, closeTab := chromedp.NewContext(c.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(closeTab)
	setup := []chromedp.Action[chromedp.Void]{}
	if v.Mobile {
		setup = append(setup, chromedp.EmulateViewport(v.Width, v.Height, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait))
	} else {
		setup = append(setup, chromedp.EmulateViewport(v.Width, v.Height))
	}
	if v.NoJavaScript {
		setup = append(setup, call(emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}))
	}
	if v.AcceptLanguage != "" {
		setup = append(setup, call(network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": v.AcceptLanguage}}))
	}
	if err := open(tab); err != nil {
		t.Fatalf("testrig: opening a browser tab: %v", err)
	}
	ctx, cancel := context.WithTimeout(tab, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, setup...); err != nil {
		t.Fatalf("testrig: opening a browser tab: %v", err)
	}
	// Registered after closeTab, so run before it: the tab is still open.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		path := filepath.Join(c.ScreenshotDir, screenshotName(t.Name()))
		if err := Screenshot(tab, path); err != nil {
			t.Logf("testrig: no screenshot of the failed page: %v", err)
			return
		}
		t.Logf("testrig: screenshot of the page at the failure: %s", path)
	})
	return tab
}

// Follow clicks the element matching the CSS selector sel (a link, a form's button) and
// waits until the page it leads to has loaded.
func Follow(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
		return err
	})
}

// call is a DevTools command as a chromedp step.
func call[P any](c cdp.Command[P, cdp.Empty], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, c, params)
		return err
	})
}

// unsafeFileRunes are the runes of a test name that do not go into a file name.
var unsafeFileRunes = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// screenshotName is a file name for a screenshot of test: its name and the time, so that
// runs do not overwrite each other.
func screenshotName(test string) string {
	return unsafeFileRunes.ReplaceAllString(test, "_") + "-" + time.Now().Format("20060102-150405.000") + ".png"
}

// Screenshot saves the whole page the tab shows (beyond the viewport too) as a PNG file at
// path, creating its directory.
func Screenshot(tab context.Context, path string) error {
	ctx, cancel := context.WithTimeout(tab, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("testrig: screenshot: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("testrig: %w", err)
	}
	return nil
}
