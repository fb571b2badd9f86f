package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildGateway builds ./cmd/caddy-wechat (Caddy with the standard modules,
// the wechat modules and the simulator) into dir and returns its path. It
// builds in root, the repository root: the gateway belongs to the root
// module and is built with its go.mod, not with wxbench's.
func buildGateway(root, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy-wechat")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy-wechat")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy-wechat: %w", err)
	}
	return bin, nil
}

// freePorts returns n loopback ports that nobody listens on right now.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return ports, nil
}

// proc is one Caddy process: the simulator, the baseline or the gateway.
// Each has its own folder, admin port and XDG_DATA_HOME.
type proc struct {
	name    string
	cmd     *exec.Cmd
	dir     string
	logPath string
	admin   string // http://127.0.0.1:port of the admin API
	port    int    // the first site's port
	done    chan struct{}
}

// startCaddy runs bin with config (a Caddyfile, or JSON when adapter is
// "json"), whose admin listener is adminPort and whose first site listens
// on port, and waits until both answer. env adds environment variables
// (the secrets that {env.X} placeholders name).
func startCaddy(bin, parent, name, config, adapter string, adminPort, port int, env []string) (*proc, error) {
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "Caddyfile")
	if adapter == "json" {
		cfgPath = filepath.Join(dir, "caddy.json")
	}
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	p := &proc{name: name, dir: dir, logPath: filepath.Join(dir, "caddy.log"), port: port,
		admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), done: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", cfgPath}
	if adapter != "json" {
		args = append(args, "--adapter", adapter)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config.d"),
		"HOME="+dir,
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	// The process dies with wxbench, even when wxbench is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	if err := p.waitReady(60 * time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls the admin API and the first site until both accept
// connections: polling for the process to come up, not waiting for time
// to pass.
func (p *proc) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited at start:\n%s", p.name, p.tail())
		default:
		}
		if resp, err := http.Get(p.admin + "/config/"); err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port)); err == nil {
				conn.Close()
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come up within %s:\n%s", p.name, limit, p.tail())
}

// tail returns the last lines the process logged.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends the process gracefully (SIGINT) and waits for it.
func (p *proc) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// url returns the URL of path on the process's first site.
func (p *proc) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
}

// peakRSS is the process's peak resident set size since the last
// resetPeak (VmHWM), in bytes.
func (p *proc) peakRSS() int64 { return procStatus(p.pid(), "VmHWM:") }

// rss is the process's resident set size now (VmRSS), in bytes.
func (p *proc) rss() int64 { return procStatus(p.pid(), "VmRSS:") }

// resetPeak sets VmHWM back to the current RSS (Linux: 5 > clear_refs).
func (p *proc) resetPeak() error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0)
}

// procStatus reads a kB field of /proc/<pid>/status, in bytes (-1 if absent).
func procStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// cpuTime is the CPU time (user and system) the process has used so far,
// from /proc/<pid>/stat (in clock ticks of 10 ms).
func (p *proc) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// memStats is the part of runtime.MemStats that the admin API's
// /debug/vars serves and wxbench reports.
type memStats struct {
	HeapInuse    uint64 `json:"HeapInuse"`
	HeapAlloc    uint64 `json:"HeapAlloc"`
	HeapIdle     uint64 `json:"HeapIdle"`
	HeapReleased uint64 `json:"HeapReleased"`
	StackInuse   uint64 `json:"StackInuse"`
	Mallocs      uint64 `json:"Mallocs"`
	TotalAlloc   uint64 `json:"TotalAlloc"`
	Sys          uint64 `json:"Sys"`
	NumGC        uint32 `json:"NumGC"`
}

// settledMemory runs a garbage collection in the process (the admin API's
// /debug/pprof/heap?gc=1) and returns its Go heap in use and its RSS
// afterwards.
func (p *proc) settledMemory() (heap memStats, rss int64, err error) {
	resp, err := http.Get(p.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return heap, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var vars struct {
		MemStats memStats `json:"memstats"`
	}
	if err := getJSON(p.admin+"/debug/vars", &vars); err != nil {
		return heap, 0, err
	}
	return vars.MemStats, p.rss(), nil
}

// memNow returns the process's memory statistics as they are (no GC).
func (p *proc) memNow() (memStats, error) {
	var vars struct {
		MemStats memStats `json:"memstats"`
	}
	err := getJSON(p.admin+"/debug/vars", &vars)
	return vars.MemStats, err
}

// cpuProfile saves a CPU profile of the process, taken over d while the
// caller generates load, to path.
func (p *proc) cpuProfile(d time.Duration, path string) error {
	return saveProfile(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.admin, int(d.Seconds())), path)
}

// heapProfile saves a heap profile of the process (after a GC) to path.
func (p *proc) heapProfile(path string) error {
	return saveProfile(p.admin+"/debug/pprof/heap?gc=1", path)
}

// saveProfile saves the profile that url serves to path.
func saveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// advanceGatewayClock moves the gateway's clock (its config has
// test_clock) and lets the refreshes that come due run.
func (p *proc) advanceGatewayClock(d time.Duration) error {
	return postJSON(p.admin+"/wechat/clock", map[string]string{"advance": d.String()}, nil)
}

// gatewayAccount is what GET /wechat/accounts says of one account.
type gatewayAccount struct {
	Name       string `json:"name"`
	HasToken   bool   `json:"has_token"`
	CallsToday int    `json:"token_calls_today"`
	TotalCalls uint64 `json:"token_calls_total"`
	Stopped    bool   `json:"refresh_stopped"`
	LastError  string `json:"last_error"`
}

func (p *proc) gatewayAccounts() ([]gatewayAccount, error) {
	var out struct {
		Accounts []gatewayAccount `json:"accounts"`
	}
	err := getJSON(p.admin+"/wechat/accounts", &out)
	return out.Accounts, err
}

// control is the HTTP client of admin and control APIs.
var control = &http.Client{Timeout: 2 * time.Minute}

func getJSON(url string, out any) error {
	resp, err := control.Get(url)
	if err != nil {
		return err
	}
	return decodeAnswer(url, resp, out)
}

func postJSON(url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := control.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	return decodeAnswer(url, resp, out)
}

func decodeAnswer(url string, resp *http.Response, out any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// adapts reports whether bin accepts the Caddyfile (caddy adapt), used to
// find out which handler options the gateway being measured supports.
func adapts(bin, dir, caddyfile string) bool {
	path := filepath.Join(dir, "probe.Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return false
	}
	cmd := exec.Command(bin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "WXB_PROBE_SECRET=probe-secret-0123456789")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd.Run() == nil
}
