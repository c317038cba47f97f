package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/testenv"
)

// TestLargeAttachmentTransfer uploads a 10 MiB file to an api process (the real
// binary, --role api,writer, on a NATS server in the test process, so that the
// process holds the api and nothing of NATS) and downloads it, checking the
// checksum. It logs how long each took and how much the api process's memory
// grew (resident set, sampled every 2 ms), the figures the README reports:
//
//	go test -run TestLargeAttachmentTransfer -v -count=1 ./cmd/guildhall/
//
// It asserts correctness only, not the figures.
func TestLargeAttachmentTransfer(t *testing.T) {
	testenv.SkipShort(t, "builds the binary and moves 20 MiB")
	n := testenv.StartNATS(t, ghnats.Topology{})
	api := startAPIProcess(t, n.URL, n.Creds)
	rest := testenv.NewREST("http://" + api.addr + "/api/v10")
	token, _ := rest.Register(t, "uploader"+randName())
	var g struct {
		ID string `json:"id"`
	}
	rest.Must(t, http.StatusCreated, "POST", "/guilds", token, map[string]string{"name": "Files"}, &g)
	var chans []struct {
		ID string `json:"id"`
	}
	rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", token, nil, &chans)

	const size = 10 << 20
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), sum) // never the whole file in the test either
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		w, err := mw.CreateFormFile("files[0]", "big.bin")
		if err == nil {
			_, err = io.Copy(w, src)
		}
		if err == nil {
			err = mw.WriteField("payload_json", `{"content":"ten MiB"}`)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", rest.Base+"/channels/"+chans[0].ID+"/messages", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", token)

	base := api.rss(t)
	peak := api.watchRSS()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	upload := time.Since(start)
	upPeak := peak()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload = %d %s", resp.StatusCode, raw)
	}
	var m struct {
		Attachments []struct {
			URL  string `json:"url"`
			Size int64  `json:"size"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Attachments) != 1 || m.Attachments[0].Size != size {
		t.Fatalf("upload answer = %s", raw)
	}

	afterUpload := api.rss(t)
	peak = api.watchRSS()
	start = time.Now()
	resp, err = http.Get(m.Attachments[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	nread, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	download := time.Since(start)
	downPeak := peak()
	if err != nil || resp.StatusCode != http.StatusOK || nread != size || !bytes.Equal(got.Sum(nil), sum.Sum(nil)) {
		t.Fatalf("download = %d, %d bytes, err %v; checksum equal %v", resp.StatusCode, nread, err, bytes.Equal(got.Sum(nil), sum.Sum(nil)))
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	t.Logf("10 MiB upload: %v; api RSS %s before, peak %s (+%s)", upload.Round(time.Millisecond), mib(base), mib(upPeak), mib(upPeak-base))
	t.Logf("10 MiB download: %v; api RSS %s before, peak %s (+%s)", download.Round(time.Millisecond), mib(afterUpload), mib(downPeak), mib(downPeak-afterUpload))
}

// apiProcess is `guildhall serve --role api,writer` in a child process.
type apiProcess struct {
	cmd  *exec.Cmd
	addr string
}

func startAPIProcess(t *testing.T, natsURL, creds string) *apiProcess {
	t.Helper()
	cmd := exec.Command(guildhallBinary(t), "serve", "--role", "api,writer", "--nats-url", natsURL, "--nats-creds", creds, "--addr", "127.0.0.1:0",
		"--data", t.TempDir(), "--log-level", "warn", "--rate-limits", "off", "--bcrypt-cost", "4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "guildhall: listening on http://"); ok {
				addr <- strings.Fields(rest)[0]
			}
		}
	}()
	select {
	case a := <-addr:
		return &apiProcess{cmd: cmd, addr: a}
	case <-time.After(60 * time.Second):
		t.Fatal("api process did not start in 60s")
	}
	return nil
}

// rss is the process's resident set size in bytes.
func (p *apiProcess) rss(t *testing.T) int64 {
	t.Helper()
	v, err := procRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// watchRSS samples the resident set every 2 ms until the returned func is
// called, which returns the highest sample.
func (p *apiProcess) watchRSS() func() int64 {
	var mu sync.Mutex
	var peak int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if v, err := procRSS(p.cmd.Process.Pid); err == nil {
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}
