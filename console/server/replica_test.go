package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/internal/pgtest"
)

// replica runs one console on cfg and returns its URL and, on the first
// start of a store, the admin password.
func replica(t *testing.T, cfg *Config) (url, password string) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := New(cfg, nil, pw)
	s.Argon2 = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("replica Run = %v", err)
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("replica stopped before it served")
			}
			if u, ok := strings.CutPrefix(line, "netward-console serving "); ok {
				url = u
			}
			if strings.HasPrefix(line, "initial admin account") {
				password = line[strings.LastIndexByte(line, ' ')+1:]
			}
			if strings.HasPrefix(line, "feed public key") && url != "" {
				// The password line follows on a first start only.
				select {
				case line := <-lines:
					if strings.HasPrefix(line, "initial admin account") {
						password = line[strings.LastIndexByte(line, ' ')+1:]
					}
				case <-time.After(500 * time.Millisecond):
				}
				go func() {
					for range lines {
					}
				}()
				return url, password
			}
		case <-time.After(30 * time.Second):
			t.Fatal("replica did not start in 30 s")
		}
	}
}

// Two console replicas on one PostgreSQL: an app tagged through replica A
// reaches an agent long-polling replica B within 2 s — through the
// database's notification, since B's refresh tick is set to an hour — and
// both replicas serve the same signed bytes for the sequence.
func TestReplicasShareFeedThroughPostgres(t *testing.T) {
	dsn := pgtest.Database(t, "replicas", pgtest.Options{})
	conf := func(name string) *Config {
		c, err := ParseConfig([]byte(fmt.Sprintf(`{"listen":"127.0.0.1:0","dataDir":%q,"store":{"dsn":%q},"feed":{"refreshSeconds":3600}}`,
			filepath.Join(t.TempDir(), name), dsn)), name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	urlA, pw := replica(t, conf("a"))
	urlB, _ := replica(t, conf("b"))
	if pw == "" {
		t.Fatal("replica A printed no admin password")
	}
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	hc := &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
	call := func(method, url string, in any, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		b, _ := json.Marshal(in)
		req, _ := http.NewRequest(method, url, bytes.NewReader(b))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	var login struct{ CSRFToken string }
	_, b := call("POST", urlA+"/api/login", map[string]string{"name": "admin", "password": pw}, nil)
	if err := json.Unmarshal(b, &login); err != nil || login.CSRFToken == "" {
		t.Fatalf("login: %s", b)
	}
	csrf := map[string]string{"X-CSRF-Token": login.CSRFToken}
	var key struct{ Key string }
	_, b = call("POST", urlA+"/api/enrollment-keys", map[string]string{"name": "replicas"}, csrf)
	if json.Unmarshal(b, &key); key.Key == "" {
		t.Fatalf("enrollment key: %s", b)
	}
	var enr struct{ Token string }
	_, b = call("POST", urlB+"/v1/enroll", map[string]string{"key": key.Key, "deviceId": "replica-agent", "deviceName": "replica-agent"}, nil)
	if json.Unmarshal(b, &enr); enr.Token == "" {
		t.Fatalf("enroll through B: %s", b)
	}
	dev := map[string]string{"Authorization": "Bearer " + enr.Token}
	resp, _ := call("GET", urlB+"/v1/indicators?wait=0", nil, dev)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" {
		t.Fatalf("first feed from B: %s", resp.Status)
	}

	type answer struct {
		resp *http.Response
		body []byte
		at   time.Time
	}
	got := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", urlB+"/v1/indicators?wait=60", nil)
		req.Header.Set("Authorization", "Bearer "+enr.Token)
		req.Header.Set("If-None-Match", etag)
		r, err := hc.Do(req)
		if err != nil {
			got <- answer{}
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		got <- answer{r, body, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // the poll is held on B
	t0 := time.Now()
	if r, b := call("PUT", urlA+"/api/apps/dropbox/tag", map[string]string{"tag": "Unsanctioned"}, csrf); r.StatusCode != 200 {
		t.Fatalf("tag on A: %s %s", r.Status, b)
	}
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the poll on B was not answered within 10 s of the tag on A")
	}
	if a.resp == nil || a.resp.StatusCode != 200 {
		t.Fatalf("poll on B: %+v", a.resp)
	}
	if d := a.at.Sub(t0); d > 2*time.Second {
		t.Errorf("tag on A reached the agent polling B after %v, want ≤ 2 s", d)
	}
	if !bytes.Contains(a.body, []byte(`"dropbox.com"`)) {
		t.Errorf("B's document lacks the tagged app's domain: %.300s", a.body)
	}
	// A serves the same sequence as the same signed bytes.
	ra, bodyA := call("GET", urlA+"/v1/indicators?wait=0", nil, dev)
	if !bytes.Equal(bodyA, a.body) || ra.Header.Get("Netward-Signature") != a.resp.Header.Get("Netward-Signature") || ra.Header.Get("ETag") != a.resp.Header.Get("ETag") {
		t.Errorf("replicas serve different bytes for one sequence:\nA %s %.200s\nB %s %.200s", ra.Header.Get("Netward-Signature"), bodyA, a.resp.Header.Get("Netward-Signature"), a.body)
	}
}
