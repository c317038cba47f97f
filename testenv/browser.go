package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the Chromium binary to use; empty looks for chromium,
// chromium-browser and google-chrome on PATH.
const EnvChromium = "GUILDHALL_CHROMIUM"

// EnvScreenshots names a folder where browser tests also save their screenshots
// (they always save them under the test's temp dir too).
const EnvScreenshots = "GUILDHALL_SCREENSHOTS"

// Browser is one headless Chromium process for a test; each Page in it has its
// own browser context (cookies, localStorage), like a separate user.
type Browser struct {
	alloc context.Context
	first context.Context // the browser itself; pages are new contexts in it
}

// ChromiumPath finds Chromium, or returns "".
func ChromiumPath() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// StartBrowser starts headless Chromium with a fresh profile; it stops at the end
// of the test. Without Chromium the test is skipped, or fails in CI (Debian:
// apt-get install chromium).
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	path := ChromiumPath()
	if path == "" {
		Unavailable(t, "Chromium not found (apt-get install chromium, or set "+EnvChromium+")")
		return nil
	}
	// The flags keep Chromium off the network (this machine has none beyond
	// loopback, and Chromium stalls trying) and out of any existing profile.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,CalculateNativeWinOcclusion,InterestFeedContentSuggestions,AutofillServerCommunication"),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	first, cancelFirst := chromedp.NewContext(alloc)
	// The first Run starts the browser, which lives as long as that Run's
	// context: it must be first itself, so the deadline is kept here.
	started := make(chan error, 1)
	go func() { _, err := chromedp.Run(first, chromedp.Evaluate[int]("1")); started <- err }()
	var err error
	select {
	case err = <-started:
	case <-time.After(30 * time.Second):
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancelFirst()
		cancelAlloc()
		Unavailable(t, "Chromium did not start: "+err.Error())
		return nil
	}
	t.Cleanup(func() {
		cancelFirst()
		cancelAlloc()
	})
	return &Browser{alloc: alloc, first: first}
}

// Page opens a tab in a new browser context of width×height CSS pixels (a phone
// width makes it a mobile viewport). The tab closes at the end of the test.
func (b *Browser) Page(t testing.TB, width, height int) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.first, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	mobile := width < 600
	act := chromedp.EmulateViewport(int64(width), int64(height))
	if mobile {
		act = chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	// Every page acts as the focused one (two users side by side): read marks
	// and focus-dependent behaviour work as for a person looking at it.
	focus := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	})
	if err := chromedp.Do(ctx, act, focus); err != nil {
		t.Fatalf("browser page: %v", err)
	}
	return ctx
}

// Screenshot saves the page as name.png under the test's temp dir (and under
// $GUILDHALL_SCREENSHOTS when set) and returns the first path.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if extra := os.Getenv(EnvScreenshots); extra != "" {
		if err := os.MkdirAll(extra, 0o755); err == nil {
			_ = os.WriteFile(filepath.Join(extra, name+".png"), png, 0o644)
		}
	}
	t.Logf("screenshot %s", path)
	return path
}
