// Package integration runs real Caddy processes, built once per test run
// from ./cmd/caddy-wechat, against the bundled WeChat simulator, which the
// tests run in-process so that they can drive its clock, inject faults and
// read its counters.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The pieces of Caddyfile most tests share. {ENDPOINT} is the token
// endpoint the gateway uses upstream, {UPSTREAM} the simulator.
const (
	mpAccount = `		account mp official {
			appid ` + mpAppID + `
			secret {env.WX_MP_SECRET}
			token_endpoint {ENDPOINT}
			api_base http://{UPSTREAM}
		}
`
	// mpDefaultAccount is mp with the default token endpoint.
	mpDefaultAccount = `		account mp official {
			appid ` + mpAppID + `
			secret {env.WX_MP_SECRET}
			api_base http://{UPSTREAM}
		}
`
	corpAccount = `		account corp wecom {
			corpid ` + corpID + `
			secret {env.WX_CORP_SECRET}
			api_base http://{UPSTREAM}
		}
`
	trustedMPSite = `:{PORT} {
	wechat mp {
		trusted
	}
	reverse_proxy {UPSTREAM}
}
`
)

// caddyBin is the gateway binary, built once by TestMain.
var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddy-wechat-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = filepath.Join(dir, "caddy-wechat")
	build := exec.Command("go", "build", "-o", caddyBin, "../cmd/caddy-wechat")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the gateway:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// gateway is one Caddy process, which a test may stop and start again with
// the same folder, ports and storage.
type gateway struct {
	t       testing.TB
	cmd     *exec.Cmd
	dir     string
	cfgPath string
	env     []string
	logPath string
	Admin   string // http://127.0.0.1:port of the admin API
	Port    int    // the first HTTP port, for the site the test's Caddyfile puts at {PORT}
	Port2   int    // a second HTTP port, {PORT2}
	done    chan struct{}
}

// appClientGlobal is the global options of a gateway in clients mode with
// the accounts and one client, app, of mp and corp, whose key is in the
// environment variable keyVar.
func appClientGlobal(accounts, keyVar string) string {
	return `{
	admin {ADMIN}
	debug
	wechat {
` + accounts + `		client app {
			key {env.` + keyVar + `}
			accounts mp corp
		}
		test_clock
	}
}
`
}

// startGateway runs Caddy with caddyfile, after replacing {ADMIN}, {PORT},
// {PORT2} and {UPSTREAM} (the simulator's host:port). Every gateway has its
// own XDG_DATA_HOME and XDG_CONFIG_HOME; env adds environment variables.
func startGateway(t testing.TB, caddyfile, upstream string, env ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, dir: t.TempDir(), Port: freePort(t), Port2: freePort(t), env: env}
	adminPort := freePort(t)
	g.Admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	cfg := strings.NewReplacer(
		"{ADMIN}", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"{PORT}", strconv.Itoa(g.Port),
		"{PORT2}", strconv.Itoa(g.Port2),
		"{UPSTREAM}", upstream,
	).Replace(caddyfile)
	g.cfgPath = filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.logPath = filepath.Join(g.dir, "caddy.log")
	t.Cleanup(g.stop)
	g.start()
	return g
}

// start runs the process and waits until it serves.
func (g *gateway) start() {
	g.t.Helper()
	g.run(caddyCommand(g.dir, g.dir, g.env, "run", "--config", g.cfgPath, "--adapter", "caddyfile"))
}

// caddyCommand is the gateway binary with args, run in dir with env added
// and its data and config folders (and HOME) in home.
func caddyCommand(dir, home string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"HOME="+home,
	)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run starts cmd as the gateway's process, its output appended to the
// log, and waits until it serves.
func (g *gateway) run(cmd *exec.Cmd) {
	g.t.Helper()
	logFile, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan struct{})
	g.cmd = cmd
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	done := g.done
	go func() {
		_ = g.cmd.Wait()
		logFile.Close()
		close(done)
	}()
	g.waitReady()
}

func (g *gateway) waitReady() {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			g.t.Fatalf("caddy exited at start:\n%s", g.logs())
		default:
		}
		resp, err := http.Get(g.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.Port)); err == nil {
				conn.Close()
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling for the process to come up, not waiting for time to pass
	}
	g.t.Fatalf("caddy did not become ready:\n%s", g.logs())
}

// stop ends the process (SIGINT: a graceful stop) and waits for it.
func (g *gateway) stop() { stopProcess(g.cmd, g.done, syscall.SIGINT) }

// stopProcess sends sig to cmd's process unless it has ended (done is
// closed) or never started, and waits for it to end, killing it after 15 s.
func stopProcess(cmd *exec.Cmd, done chan struct{}, sig os.Signal) {
	if cmd == nil || cmd.Process == nil || done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// reload loads the gateway's Caddyfile again through the admin API, even
// though nothing changed. Each load replaces the admin listener too, so the
// answer to a load can be cut: a load is retried on a new connection until
// one answers.
func (g *gateway) reload() {
	g.t.Helper()
	cfg, err := os.ReadFile(g.cfgPath)
	if err != nil {
		g.t.Fatal(err)
	}
	admin := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 5 {
		req, _ := http.NewRequest("POST", g.Admin+"/load", bytes.NewReader(cfg))
		req.Header.Set("Content-Type", "text/caddyfile")
		req.Header.Set("Cache-Control", "must-revalidate") // reload even though nothing changed
		var resp *http.Response
		if resp, err = admin.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				g.t.Fatalf("reload: %s", resp.Status)
			}
			// The old config's server closes its idle connections as it
			// stops: a POST sent on one of them just then fails with EOF
			// and is not retried, so calls after a reload dial anew.
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			return
		}
	}
	g.t.Fatalf("reload: %v", err)
}

// kill ends the process at once (SIGKILL), as a crash would.
func (g *gateway) kill() {
	_ = g.cmd.Process.Kill()
	<-g.done
}

// logs returns everything the process has logged.
func (g *gateway) logs() string {
	b, _ := os.ReadFile(g.logPath)
	return string(b)
}

// URL returns the gateway URL of path on its first site.
func (g *gateway) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", g.Port, path)
}

// URL2 returns the gateway URL of path on its second site.
func (g *gateway) URL2(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", g.Port2, path)
}

// advance moves the gateway's test clock (the config needs test_clock) and
// waits for the refreshes that come due.
func (g *gateway) advance(d time.Duration) {
	g.t.Helper()
	body := fmt.Sprintf(`{"advance":%q}`, d.String())
	resp, err := http.Post(g.Admin+"/wechat/clock", "application/json", strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		g.t.Fatalf("advancing the gateway clock: %s: %s", resp.Status, b)
	}
}

// accountStatus is what GET /wechat/accounts says of one account.
type accountStatus struct {
	Name       string `json:"name"`
	HasToken   bool   `json:"has_token"`
	Generation uint64 `json:"generation"`
	CallsToday int    `json:"token_calls_today"`
	Stopped    bool   `json:"refresh_stopped"`
	LastError  string `json:"last_error"`
}

func (g *gateway) accounts() map[string]accountStatus {
	g.t.Helper()
	resp, err := http.Get(g.Admin + "/wechat/accounts")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Accounts []accountStatus `json:"accounts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		g.t.Fatal(err)
	}
	m := make(map[string]accountStatus)
	for _, a := range out.Accounts {
		m[a.Name] = a
	}
	return m
}

// peakRSS returns the process's peak resident set size in bytes (VmHWM).
func (g *gateway) peakRSS() int64 {
	return procStatus(g.t, g.cmd.Process.Pid, "VmHWM:")
}

// rss returns the process's resident set size now (VmRSS).
func (g *gateway) rss() int64 {
	return procStatus(g.t, g.cmd.Process.Pid, "VmRSS:")
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: write 5 to clear_refs).
func (g *gateway) resetPeakRSS() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", g.cmd.Process.Pid), []byte("5"), 0)
}

func procStatus(t testing.TB, pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// wiretap sits in front of the simulator and remembers every access token
// the simulator handed out or was sent, so that tests can check that none of
// them ever reaches a log line or a client.
type wiretap struct {
	next   http.Handler
	mu     sync.Mutex
	tokens map[string]bool // issued by the token endpoints
	seen   []string        // access_token query values, in order
	calls  map[string]int  // requests per path
	bodies map[string][][]byte
}

func newWiretap(next http.Handler) *wiretap {
	return &wiretap{next: next, tokens: make(map[string]bool), calls: make(map[string]int), bodies: make(map[string][][]byte)}
}

func (w *wiretap) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil && r.ContentLength < 64<<20 {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	w.mu.Lock()
	w.calls[r.URL.Path]++
	if len(body) > 0 {
		w.bodies[r.URL.Path] = append(w.bodies[r.URL.Path], body)
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		w.seen = append(w.seen, tok)
	}
	w.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "token") {
		rec := httptest.NewRecorder()
		w.next.ServeHTTP(rec, r)
		var ans struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &ans) == nil && ans.AccessToken != "" {
			w.mu.Lock()
			w.tokens[ans.AccessToken] = true
			w.mu.Unlock()
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		_, _ = rw.Write(rec.Body.Bytes())
		return
	}
	w.next.ServeHTTP(rw, r)
}

// allTokens returns every token the simulator's token endpoints issued so
// far: the credentials that must never leak. (Tokens a client sent itself,
// such as a user's /sns/ token, are the client's own.)
func (w *wiretap) allTokens() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.tokens))
	for tok := range w.tokens {
		out = append(out, tok)
	}
	return out
}

// count returns how many requests reached path.
func (w *wiretap) count(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[path]
}

// bodiesOf returns the bodies sent to path, in order.
func (w *wiretap) bodiesOf(path string) [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.bodies[path]...)
}

// lastSent returns the last access_token the simulator was sent.
func (w *wiretap) lastSent() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return ""
	}
	return w.seen[len(w.seen)-1]
}

// assertNoLeaks fails t if any of the secrets or tokens appears in text.
func assertNoLeaks(t testing.TB, where, text string, secrets []string, tokens []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s holds a secret", where)
		}
	}
	for _, tok := range tokens {
		if tok != "" && strings.Contains(text, tok) {
			t.Errorf("%s holds an access token (%d chars)", where, len(tok))
		}
	}
}

// get fetches url and returns the status and body.
func get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	return send(t, http.MethodGet, url, "", nil)
}

// send makes a request with body, of contentType unless that is empty,
// and returns the status and body of the answer.
func send(t testing.TB, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// getStorm sends n concurrent GETs, released together, the i-th to url(i),
// and returns how many failed: got no HTTP 200 answer, or one whose body
// ok refuses. ok may run concurrently.
func getStorm(n int, url func(i int) string, ok func(body []byte) bool) int64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := client.Get(url(i))
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !ok(body) {
				failed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	return failed.Load()
}

// answersUser reports whether body is a successful user/info answer.
func answersUser(body []byte) bool {
	return errcodeOf(body) == 0 && bytes.Contains(body, []byte(`"openid"`))
}

// errcodeOf returns the errcode of a JSON answer (0 when it has none).
func errcodeOf(b []byte) int {
	var v struct {
		Errcode int `json:"errcode"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Errcode
}

// redisServer is a real redis-server on a free loopback port, with no
// persistence, that a test may stop and start again.
type redisServer struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	own  int // connections the harness made since the server started
}

// startRedis runs redis-server. .ci/test installs it when it is missing.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed: run .ci/test, which installs it")
	}
	r := &redisServer{t: t, Port: freePort(t), dir: t.TempDir()}
	t.Cleanup(r.stop)
	r.start()
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	r.done = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := r.done
	go func() { _ = r.cmd.Wait(); close(done) }()
	r.own = 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.Dial("tcp", r.Addr()); err == nil {
			r.own++
			_, _ = conn.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := io.ReadFull(conn, buf)
			conn.Close()
			if n == 7 && string(buf) == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond) // polling for the server to come up
	}
	r.t.Fatal("redis-server did not come up")
}

// stop ends redis-server and waits for it.
func (r *redisServer) stop() { stopProcess(r.cmd, r.done, syscall.SIGTERM) }

// awaitClients waits until n connections other than the harness's have
// reached the server since it last started, or timeout passes, and says
// whether they did.
func (r *redisServer) awaitClients(n int, timeout time.Duration) bool {
	r.t.Helper()
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		r.t.Fatal(err)
	}
	defer conn.Close()
	r.own++
	rd := bufio.NewReader(conn)
	for deadline := time.Now().Add(timeout); ; {
		if _, err := conn.Write([]byte("INFO stats\r\n")); err != nil {
			r.t.Fatal(err)
		}
		header, err := rd.ReadString('\n') // a bulk string: $<length>
		if err != nil || !strings.HasPrefix(header, "$") {
			r.t.Fatalf("INFO stats: %q, %v", header, err)
		}
		size, _ := strconv.Atoi(strings.TrimSpace(header[1:]))
		body := make([]byte, size+2)
		if _, err := io.ReadFull(rd, body); err != nil {
			r.t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(body), "total_connections_received:")
		total, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]))
		if total-r.own >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling for the clients to dial
	}
}

// Addr is host:port of the server.
func (r *redisServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// loadCounts are what keepCalling's clients saw.
type loadCounts struct {
	calls, failures, transport atomic.Int64
}

// check fails t if any answer during what (say "20 reloads") failed, or
// if fewer than atLeast calls were answered well, and logs the counts.
func (c *loadCounts) check(t *testing.T, what string, atLeast int64) {
	t.Helper()
	if n := c.failures.Load(); n != 0 {
		t.Errorf("%d of %d calls failed during %s", n, c.calls.Load(), what)
	}
	if ok := c.calls.Load() - c.failures.Load() - c.transport.Load(); ok < atLeast {
		t.Errorf("only %d calls were answered during %s", ok, what)
	}
	t.Logf("%d calls, %d reset by a reload", c.calls.Load(), c.transport.Load())
}

// keepCalling starts n clients that GET url over and over, judging each
// answer with ok, until stop is called; stop waits for them and may be
// called more than once. A call that fails in transport (Caddy on Linux
// reloads onto a new SO_REUSEPORT socket and closes the old one, and a
// connection in flight at that instant is reset by the kernel, with or
// without this module) is counted apart from a failed answer. The first
// three failed answers are logged.
func keepCalling(t *testing.T, n int, url string, ok func(status int, body []byte) bool) (counts *loadCounts, stop func()) {
	counts = new(loadCounts)
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(url)
				counts.calls.Add(1)
				if err != nil {
					counts.transport.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !ok(resp.StatusCode, body) && counts.failures.Add(1) <= 3 {
					t.Logf("failed call: HTTP %d %s", resp.StatusCode, body)
				}
			}
		}()
	}
	return counts, sync.OnceFunc(func() { close(done); wg.Wait() })
}
