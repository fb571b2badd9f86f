package integration

// TestExamples runs every Caddy config in examples/ (issue 16): each
// *.Caddyfile, and each *.json that is a Caddy config (one with an "apps"
// key). No list of them is kept here: an example added to the folder is
// run, and one that does not work fails the test named after its file.
//
// The example itself is never edited. The test works on a copy:
//
//   - Every {env.NAME} and {file.PATH} placeholder gets a test value: env
//     vars are set for the Caddy processes, files are written to a temp
//     folder and the copy's placeholder points at them.
//   - A Caddyfile is adapted (`caddy adapt`, which must not warn); then the
//     JSON is rewritten for the test: the admin endpoint and every server
//     listen on free loopback ports (a listener bound to an address keeps
//     127.0.0.1; automatic HTTPS, TLS and host matchers go, since the test
//     speaks plain HTTP to 127.0.0.1), every account's api_base and every
//     reverse_proxy upstream point at the simulator, Redis storage at a
//     real redis-server (with the example's password set on it), file
//     storage and log files into the temp folder. remote_ip and path
//     matchers stay: the examples let loopback in.
//   - `caddy validate` checks the rewritten config, then it runs: once, or
//     three times on one Redis for a config with Redis storage.
//
// The simulator gets the accounts the example configures, with the test
// values of their secrets. On each instance, for every site with the
// wechat handler, the test makes the calls the site is for, through
// silenceper/wechat where it has them (see exampleCalls): on a trusted site
// as the account, and in clients mode with every key of every client that
// may use the site, within the client's `paths` and the site's path
// matchers; a client limited by `paths` is refused a call outside them.
// Finally every account cost WeChat one token at most (a cluster shares
// it), and no log line holds a secret, a key or a token.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/miniprogram"
	miniConfig "github.com/silenceper/wechat/v2/miniprogram/config"
	"github.com/silenceper/wechat/v2/miniprogram/qrcode"
	"github.com/silenceper/wechat/v2/officialaccount"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	openConfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work"
	workConfig "github.com/silenceper/wechat/v2/work/config"
	workMessage "github.com/silenceper/wechat/v2/work/message"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

// examplesDir is the gallery, relative to this package.
const examplesDir = "../examples"

// exampleClusterSize is how many instances run a config with Redis storage.
const exampleClusterSize = 3

// examplePage is the page URL the JS-SDK calls sign.
const examplePage = "https://www.example.com/item?id=7"

// exampleMenu seeds the simulator's official accounts, for menu/get.
const exampleMenu = `{"button":[{"type":"click","name":"今日推荐","key":"TODAY"}]}`

func TestExamples(t *testing.T) {
	files := exampleConfigs(t)
	if len(files) == 0 {
		t.Fatal("no Caddy config in examples/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			runExample(t, f)
		})
	}
}

// TestExampleJSONMatchesItsCaddyfile: a JSON example with a Caddyfile of
// the same name (clients.json, clients.Caddyfile) is its JSON form: both
// configure the same accounts and clients.
func TestExampleJSONMatchesItsCaddyfile(t *testing.T) {
	for _, f := range exampleConfigs(t) {
		if !strings.EqualFold(filepath.Ext(f), ".json") {
			continue
		}
		caddyfile := strings.TrimSuffix(f, filepath.Ext(f)) + ".Caddyfile"
		if _, err := os.Stat(caddyfile); err != nil {
			continue
		}
		out, err := exec.Command(caddyBin, "adapt", "--config", caddyfile, "--adapter", "caddyfile").Output()
		if err != nil {
			t.Fatalf("examples/%s: caddy adapt: %v", filepath.Base(caddyfile), err)
		}
		var adapted, written struct {
			Apps struct {
				Wechat any `json:"wechat"`
			} `json:"apps"`
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &adapted); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &written); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(adapted.Apps.Wechat, written.Apps.Wechat) {
			a, _ := json.Marshal(adapted.Apps.Wechat)
			w, _ := json.Marshal(written.Apps.Wechat)
			t.Errorf("examples/%s configures other accounts or clients than examples/%s:\n%s\nadapted from the Caddyfile:\n%s",
				filepath.Base(f), filepath.Base(caddyfile), w, a)
		}
	}
}

// exampleConfigs lists the Caddy configs of examples/: every Caddyfile,
// and every JSON file with a top-level "apps" key. Any other JSON file
// (the Grafana dashboard, the demo menu) must still parse.
func exampleConfigs(t *testing.T) []string {
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range entries {
		name := ent.Name()
		p := filepath.Join(examplesDir, name)
		switch {
		case ent.IsDir():
		case name == "Caddyfile" || strings.HasSuffix(strings.ToLower(name), ".caddyfile"):
			out = append(out, p)
		case strings.HasSuffix(strings.ToLower(name), ".json"):
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(b, &top); err != nil {
				t.Errorf("examples/%s: not a JSON object: %v", name, err)
				continue
			}
			if _, ok := top["apps"]; ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// exampleAccount is an account of the example's wechat app, with the test
// value of its secret.
type exampleAccount struct {
	name, kind, appid, agentID, secret string
	token, aesKey                      string // a platform's message token and EncodingAESKey
}

// exampleClient is a client of the example's wechat app, with the test
// values of its keys.
type exampleClient struct {
	name     string
	keys     []string
	accounts []string
	paths    []string // nil: every path
}

// exampleRun is one example under test.
type exampleRun struct {
	t        *testing.T
	file     string // examples/<name>, for messages
	dir      string
	root     string            // the repository root: the Caddy processes' working folder
	env      []string          // NAME=value for every {env.NAME}
	values   map[string]string // placeholder, as in the test's copy → its test value
	cfg      map[string]any    // the config as JSON, placeholders rewritten
	accounts map[string]exampleAccount
	clients  []exampleClient
	sim      *simulator.Simulator
	simCfg   simulator.Config // its config: platforms are added once their callback is known
	tap      *wiretap
	tickets  *ticketTap
	upstream string // the simulator's host:port
	redis    *redisServer
	client   *http.Client // plain HTTP calls to the gateway
	sdkTr    *http.Transport
	cross    *exampleCross // a clients-mode call to repeat on the other instances
	calls    atomic.Int64  // calls made, to vary codes
}

// exampleCross is a call with a gateway token of the first instance, which
// the other instances of a cluster must accept.
type exampleCross struct {
	server   string
	tokenURL string // path and query of the token call
	probe    string // path and query of a token-checked GET
}

var examplePlaceholder = regexp.MustCompile(`\{(env|file)\.([^{}\s"]+)\}`)

// exampleValue is the test value of a placeholder: 32 characters (a client
// key needs 16, a Redis encryption key 32), or 43 for an EncodingAESKey,
// the same on every run.
func exampleValue(placeholder string) string {
	sum := sha256.Sum256([]byte("example " + placeholder))
	if strings.Contains(strings.ToUpper(placeholder), "AES") {
		return "x" + hex.EncodeToString(sum[:])[:42]
	}
	return "x" + hex.EncodeToString(sum[:])[:31]
}

func runExample(t *testing.T, file string) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e := &exampleRun{
		t: t, file: "examples/" + filepath.Base(file), dir: t.TempDir(), root: root,
		values: make(map[string]string), accounts: make(map[string]exampleAccount),
		sdkTr: &http.Transport{}, client: &http.Client{Timeout: 30 * time.Second},
	}
	t.Cleanup(e.sdkTr.CloseIdleConnections)
	e.load(file)
	e.startSimulator()
	if e.storageModule() == "redis" {
		e.startRedis()
	}
	n := 1
	if e.redis != nil {
		n = exampleClusterSize
	}
	var gws []*gateway
	var ports []map[string]int
	for i := range n {
		cfgPath, admin, p := e.writeInstance(i)
		if i == 0 {
			if out, err := e.command("validate", "--config", cfgPath).CombinedOutput(); err != nil {
				t.Fatalf("%s: caddy validate, after the test's rewriting: %v\n%s", e.file, err, caddyErrors(out))
			}
		}
		g := e.start(cfgPath, admin, p)
		gws, ports = append(gws, g), append(ports, p)
		if i == 0 {
			e.setUpPlatforms(p)
		}
		e.exercise(i, p)
	}
	if e.cross != nil {
		e.crossCheck(ports)
	}
	e.checkTokenFetches(n)
	for _, g := range gws {
		g.stop()
		assertNoLeaks(t, e.file+": a Caddy log", g.logs(), e.secrets(), e.tap.allTokens())
	}
}

// load reads the example, gives its placeholders test values and turns it
// into JSON.
func (e *exampleRun) load(file string) {
	t := e.t
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	secretsDir := filepath.Join(e.dir, "secrets")
	if err := os.Mkdir(secretsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]string) // original placeholder → rewritten
	text := examplePlaceholder.ReplaceAllStringFunc(string(raw), func(ph string) string {
		if r, ok := seen[ph]; ok {
			return r
		}
		m := examplePlaceholder.FindStringSubmatch(ph)
		value, r := exampleValue(ph), ph
		if m[1] == "env" {
			e.env = append(e.env, m[2]+"="+value)
		} else {
			p := filepath.Join(secretsDir, fmt.Sprintf("%02d-%s", len(seen), filepath.Base(m[2])))
			if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
				t.Fatal(err)
			}
			r = "{file." + p + "}"
		}
		seen[ph], e.values[r] = r, value
		return r
	})
	if strings.HasSuffix(strings.ToLower(file), ".json") {
		if err := json.Unmarshal([]byte(text), &e.cfg); err != nil {
			t.Fatalf("%s: %v", e.file, err)
		}
	} else {
		copyPath := filepath.Join(e.dir, filepath.Base(file))
		if err := os.WriteFile(copyPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := e.command("adapt", "--config", copyPath, "--adapter", "caddyfile")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: caddy adapt: %v\n%s", e.file, err, stderr.Bytes())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, `"level":"warn"`) || strings.Contains(line, `"level":"error"`) {
				t.Errorf("%s: caddy adapt warns: %s", e.file, line)
			}
		}
		if err := json.Unmarshal(out, &e.cfg); err != nil {
			t.Fatalf("%s: caddy adapt answered no JSON: %v", e.file, err)
		}
	}
	e.readWechatApp()
}

// resolve replaces the placeholders of s by their test values.
func (e *exampleRun) resolve(s string) string {
	return examplePlaceholder.ReplaceAllStringFunc(s, func(ph string) string {
		if v, ok := e.values[ph]; ok {
			return v
		}
		return ph
	})
}

// secrets are every test value: secrets, keys, passwords.
func (e *exampleRun) secrets() []string {
	var out []string
	for _, v := range e.values {
		out = append(out, v)
	}
	return out
}

// readWechatApp reads the accounts and clients of the wechat app.
func (e *exampleRun) readWechatApp() {
	app := jsonObject(jsonObject(e.cfg["apps"])["wechat"])
	if app == nil {
		e.t.Fatalf("%s: no wechat app (the global wechat option)", e.file)
	}
	for name, v := range jsonObject(app["accounts"]) {
		a := jsonObject(v)
		acct := exampleAccount{name: name, kind: jsonString(a["kind"]), appid: e.resolve(jsonString(a["appid"])),
			agentID: e.resolve(jsonString(a["agent_id"])), secret: e.resolve(jsonString(a["secret"])),
			token: e.resolve(jsonString(a["token"])), aesKey: e.resolve(jsonString(a["encoding_aes_key"]))}
		if acct.kind == "" {
			acct.kind = simulator.KindOfficial
		}
		e.accounts[name] = acct
	}
	for _, name := range sortedKeys(jsonObject(app["clients"])) {
		c := jsonObject(jsonObject(app["clients"])[name])
		client := exampleClient{name: name, accounts: jsonStrings(c["accounts"]), paths: jsonStrings(c["paths"])}
		for _, k := range jsonStrings(c["keys"]) {
			client.keys = append(client.keys, e.resolve(k))
		}
		e.clients = append(e.clients, client)
	}
}

// startSimulator runs a simulator with the example's accounts.
func (e *exampleRun) startSimulator() {
	var accounts []simulator.Account
	labels := make(map[string]bool)
	for _, name := range sortedKeys(e.accounts) {
		a := e.accounts[name]
		if a.kind == exampleComponent {
			continue // a platform: see setUpPlatforms
		}
		sa := simulator.Account{Kind: a.kind, AppID: a.appid, Secret: a.secret, AgentID: a.agentID}
		if a.kind == simulator.KindOfficial {
			sa.Menu = exampleMenu
		}
		if labels[sa.Label()] {
			if a.kind == simulator.KindOfficial {
				continue // the same account twice
			}
			// Several apps of a corp without agent_id: the simulator tells
			// them apart by one.
			sa.AgentID = strconv.Itoa(9000001 + len(accounts))
			a.agentID = sa.AgentID
			e.accounts[name] = a
		}
		labels[sa.Label()] = true
		accounts = append(accounts, sa)
	}
	e.simCfg = simulator.Config{Accounts: accounts}
	sim, err := simulator.New(e.simCfg)
	if err != nil {
		e.t.Fatalf("%s: the simulator cannot have the example's accounts: %v", e.file, err)
	}
	e.sim = sim
	e.tickets = &ticketTap{next: sim}
	e.tap = newWiretap(e.tickets)
	srv := httptest.NewServer(e.tap)
	e.t.Cleanup(srv.Close)
	e.upstream = strings.TrimPrefix(srv.URL, "http://")
}

func (e *exampleRun) storageModule() string {
	return jsonString(jsonObject(e.cfg["storage"])["module"])
}

// startRedis runs redis-server for Redis storage, with the example's
// password.
func (e *exampleRun) startRedis() {
	e.redis = startRedis(e.t)
	if pw := e.resolve(jsonString(jsonObject(e.cfg["storage"])["password"])); pw != "" {
		if err := redisCommand(e.redis.Addr(), "CONFIG", "SET", "requirepass", pw); err != nil {
			e.t.Fatalf("setting the Redis password: %v", err)
		}
	}
}

// redisCommand sends one command and expects +OK.
func redisCommand(addr string, args ...string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(buf[:n], []byte("+OK")) {
		return fmt.Errorf("redis answered %q", buf[:n])
	}
	return nil
}

// writeInstance writes the config of instance i, rewritten for the test,
// and returns its path, its admin port and the port of each server.
func (e *exampleRun) writeInstance(i int) (string, int, map[string]int) {
	t := e.t
	var cfg map[string]any
	b, _ := json.Marshal(e.cfg)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	admin := freePort(t)
	cfg["admin"] = map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", admin)}
	ports := make(map[string]int)
	servers := jsonObject(jsonObject(jsonObject(cfg["apps"])["http"])["servers"])
	for _, name := range sortedKeys(servers) {
		srv := jsonObject(servers[name])
		ports[name] = freePort(t)
		host := ""
		if l := jsonStrings(srv["listen"]); len(l) > 0 {
			addr := l[0][strings.Index(l[0], "/")+1:] // without a network prefix
			if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
				host = "127.0.0.1"
			}
		}
		srv["listen"] = []any{fmt.Sprintf("%s:%d", host, ports[name])}
		srv["automatic_https"] = map[string]any{"disable": true}
		delete(srv, "tls_connection_policies")
		hosts := make(map[string]bool)
		for _, r := range jsonArray(srv["routes"]) {
			for _, set := range jsonArray(jsonObject(r)["match"]) {
				if h, ok := jsonObject(set)["host"]; ok {
					hosts[strings.Join(jsonStrings(h), ",")] = true
				}
			}
		}
		if len(hosts) > 1 {
			t.Fatalf("%s: server %s serves several hosts on one port; the test sends every call to 127.0.0.1 and cannot tell them apart", e.file, name)
		}
		e.rewriteRoutes(srv["routes"])
		e.rewriteRoutes(jsonObject(srv["errors"])["routes"])
	}
	for _, v := range jsonObject(jsonObject(jsonObject(cfg["apps"])["wechat"])["accounts"]) {
		jsonObject(v)["api_base"] = "http://" + e.upstream
	}
	if st := jsonObject(cfg["storage"]); st != nil {
		switch jsonString(st["module"]) {
		case "redis":
			st["address"] = []any{e.redis.Addr()}
			delete(st, "host")
			delete(st, "port")
			st["tls_enabled"] = false
		case "file_system":
			st["root"] = filepath.Join(e.dir, fmt.Sprintf("storage-%d", i))
		}
	}
	for name, l := range jsonObject(jsonObject(cfg["logging"])["logs"]) {
		if w := jsonObject(jsonObject(l)["writer"]); jsonString(w["output"]) == "file" {
			w["filename"] = filepath.Join(e.dir, fmt.Sprintf("log-%d-%s", i, name))
		}
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("weixin.qq.com")) {
		t.Fatalf("%s: after the test's rewriting the config still names weixin.qq.com: the test does not know how to point this at the simulator\n%s", e.file, out)
	}
	p := filepath.Join(e.dir, fmt.Sprintf("instance-%d.json", i))
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, admin, ports
}

// rewriteRoutes drops host matchers and points reverse_proxy handlers at
// the simulator, in routes and their subroutes.
func (e *exampleRun) rewriteRoutes(routes any) {
	for _, r := range jsonArray(routes) {
		route := jsonObject(r)
		for _, set := range jsonArray(route["match"]) {
			delete(jsonObject(set), "host")
		}
		for _, h := range jsonArray(route["handle"]) {
			handler := jsonObject(h)
			switch jsonString(handler["handler"]) {
			case "subroute":
				e.rewriteRoutes(handler["routes"])
			case "reverse_proxy":
				handler["upstreams"] = []any{map[string]any{"dial": e.upstream}}
				delete(handler, "dynamic_upstreams")
				if tr := jsonObject(handler["transport"]); tr != nil {
					delete(tr, "tls")
				}
			}
		}
	}
}

// command is the gateway binary with args, run in the repository root
// with the example's environment and folders of its own.
func (e *exampleRun) command(args ...string) *exec.Cmd {
	return caddyCommand(e.root, e.dir, e.env, args...)
}

// caddyErrors keeps the lines of Caddy's output that are not info logs.
func caddyErrors(out []byte) string {
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(line, `"level":"info"`) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// start runs an instance from its JSON config, in the repository root (as
// a user runs an example), and waits until it serves.
func (e *exampleRun) start(cfgPath string, admin int, ports map[string]int) *gateway {
	t := e.t
	first := 0
	for _, name := range sortedKeys(ports) {
		if first == 0 {
			first = ports[name]
		}
	}
	g := &gateway{t: t, dir: filepath.Dir(cfgPath), cfgPath: cfgPath, env: e.env,
		logPath: strings.TrimSuffix(cfgPath, ".json") + ".log", Admin: fmt.Sprintf("http://127.0.0.1:%d", admin), Port: first}
	t.Cleanup(g.stop)
	g.run(e.command("run", "--config", cfgPath))
	return g
}

// exampleHandler is a wechat handler of a server, and the path matchers of
// the routes that lead to it.
type exampleHandler struct {
	account string
	kind    string
	trusted bool
	levels  [][]string // each route's path patterns, outermost first
}

// walkRoutes calls visit for every handler of routes, with the path
// matchers that lead to it.
func walkRoutes(routes any, levels [][]string, visit func(h map[string]any, levels [][]string)) {
	for _, r := range jsonArray(routes) {
		route := jsonObject(r)
		lv := levels
		if sets := jsonArray(route["match"]); len(sets) > 0 {
			var paths []string
			for _, set := range sets {
				p := jsonStrings(jsonObject(set)["path"])
				if len(p) == 0 {
					paths = nil // a matcher set without a path matcher lets every path in
					break
				}
				paths = append(paths, p...)
			}
			if paths != nil {
				lv = append(slices.Clip(levels), paths)
			}
		}
		for _, h := range jsonArray(route["handle"]) {
			handler := jsonObject(h)
			if jsonString(handler["handler"]) == "subroute" {
				walkRoutes(handler["routes"], lv, visit)
			} else {
				visit(handler, lv)
			}
		}
	}
}

// pathAllowed reports whether p passes every level of patterns: exact
// paths, prefixes ending in *, or other Caddy path patterns.
func pathAllowed(p string, levels [][]string) bool {
	for _, patterns := range levels {
		if !slices.ContainsFunc(patterns, func(pat string) bool {
			pat, p := strings.ToLower(pat), strings.ToLower(p)
			if prefix, ok := strings.CutSuffix(pat, "*"); ok && !strings.Contains(prefix, "*") {
				return strings.HasPrefix(p, prefix)
			}
			ok, _ := path.Match(pat, p)
			return ok || pat == p
		}) {
			return false
		}
	}
	return true
}

// exercise makes the calls each server of instance i is for.
func (e *exampleRun) exercise(i int, ports map[string]int) {
	t := e.t
	servers := jsonObject(jsonObject(jsonObject(e.cfg["apps"])["http"])["servers"])
	handlers := 0
	for _, name := range sortedKeys(servers) {
		srv := jsonObject(servers[name])
		// The server as the example has it: "server srv0 (:8080)".
		where := fmt.Sprintf("server %s (%s)", name, strings.Join(jsonStrings(srv["listen"]), " "))
		if e.redis != nil {
			where += fmt.Sprintf(" of instance %d", i)
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", ports[name])
		walkRoutes(srv["routes"], nil, func(h map[string]any, levels [][]string) {
			switch jsonString(h["handler"]) {
			case "file_server":
				if len(levels) == 0 {
					if status, _ := e.get(base + "/"); status != http.StatusOK {
						t.Errorf("%s: %s: GET / answered %d from file_server", e.file, where, status)
					} else {
						t.Logf("%s: GET / ok from file_server", where)
					}
				}
			case "wechat":
				handlers++
				wh := exampleHandler{account: jsonString(h["account"]), kind: jsonString(h["kind"]),
					trusted: h["trusted"] == true, levels: levels}
				switch {
				case h["callback"] == true:
					// setUpPlatforms had WeChat push to it.
				case e.accounts[wh.account].kind == exampleComponent:
					e.exercisePlatform(where, base, wh)
				case wh.trusted:
					e.exerciseTrusted(where, base, wh)
				default:
					e.exerciseClients(i, name, where, base, wh)
				}
			}
		})
	}
	if handlers == 0 {
		t.Errorf("%s: no site has the wechat handler", e.file)
	}
}

// exampleComponent is the kind of a third-party platform's account.
const exampleComponent = "component"

// exampleAuthorizer is the official account that authorises each platform
// of an example.
const exampleAuthorizer = "wxexampleauthoriz1"

// setUpPlatforms gives the simulator the example's third-party platforms,
// with their callback routes (a wechat handler with callback, under an
// exact path) as their authorization event URLs, and an authorizer each;
// then WeChat pushes each a verify ticket.
func (e *exampleRun) setUpPlatforms(ports map[string]int) {
	callbacks := make(map[string]string) // account -> callback URL
	servers := jsonObject(jsonObject(jsonObject(e.cfg["apps"])["http"])["servers"])
	for _, name := range sortedKeys(servers) {
		walkRoutes(jsonObject(servers[name])["routes"], nil, func(h map[string]any, levels [][]string) {
			if jsonString(h["handler"]) != "wechat" || h["callback"] != true {
				return
			}
			if len(levels) == 0 || len(levels[len(levels)-1]) != 1 || strings.ContainsAny(levels[len(levels)-1][0], "*") {
				e.t.Fatalf("%s: the callback route of %s needs one exact path, for WeChat's authorization event URL", e.file, jsonString(h["account"]))
			}
			callbacks[jsonString(h["account"])] = fmt.Sprintf("http://127.0.0.1:%d%s", ports[name], levels[len(levels)-1][0])
		})
	}
	cfg := e.simCfg
	for _, name := range sortedKeys(e.accounts) {
		a := e.accounts[name]
		if a.kind != exampleComponent {
			continue
		}
		if callbacks[name] == "" {
			e.t.Fatalf("%s: platform %s has no callback route (`wechat %s { callback }`): WeChat could not push its verify ticket", e.file, name, name)
		}
		cfg.Components = append(cfg.Components, simulator.Component{AppID: a.appid, Secret: a.secret, Token: a.token,
			EncodingAESKey: a.aesKey, CallbackURL: callbacks[name]})
		cfg.Authorizers = append(cfg.Authorizers, simulator.Authorizer{ComponentAppID: a.appid, AppID: exampleAuthorizer})
	}
	if len(cfg.Components) == 0 {
		return
	}
	cfg.ComponentTicketInterval = -1 // pushed below, not on a timer
	if err := e.sim.Reconfigure(cfg); err != nil {
		e.t.Fatalf("%s: the simulator cannot have the example's platforms: %v", e.file, err)
	}
	for _, c := range cfg.Components {
		pushes, err := e.sim.PushComponentTicket(c.AppID)
		if err != nil || len(pushes) != 1 || !pushes[0].Delivered {
			e.t.Fatalf("%s: pushing the verify ticket of %s to %s: %+v, %v", e.file, c.AppID, c.CallbackURL, pushes, err)
		}
	}
}

// exercisePlatform runs a third-party platform's flow through its site
// with silenceper/wechat's open platform: the component token, an
// authorizer authorises the platform (WeChat pushes the event to the
// callback, and the gateway exchanges the code), api_query_auth, the
// authorizer's token, and a menu set and read on the authorizer's behalf.
// On a trusted site as the platform, else with every key of every client
// that may use it.
func (e *exampleRun) exercisePlatform(where, base string, h exampleHandler) {
	acct := e.accounts[h.account]
	secrets := []string{"any-value-on-a-trusted-site"}
	if !h.trusted {
		secrets = nil
		for _, c := range e.clients {
			if slices.Contains(c.accounts, h.account) {
				secrets = append(secrets, c.keys...)
			}
		}
		if len(secrets) == 0 {
			e.t.Errorf("%s: %s: no client may use platform %s", e.file, where, h.account)
		}
	}
	for _, secret := range secrets {
		if err := e.platformFlow(base, acct, secret, h.trusted); err != nil {
			e.t.Errorf("%s: %s, platform %s: %v", e.file, where, h.account, err)
		} else {
			e.t.Logf("%s, platform %s: authorised, api_query_auth, authorizer token, menu ok", where, h.account)
		}
	}
}

// platformFlow is one run of exercisePlatform's flow with secret as the
// component_appsecret. The SDK must hold gateway tokens (placeholders on a
// trusted site) and the gateway's stand-in for the refresh token.
func (e *exampleRun) platformFlow(base string, acct exampleAccount, secret string, trusted bool) error {
	res, err := e.sim.Authorize(acct.appid, exampleAuthorizer, "")
	if err != nil || !res.Push.Delivered {
		return fmt.Errorf("authorising %s (the push to the callback): %+v, %v", exampleAuthorizer, res, err)
	}
	exampleSDKMu.Lock()
	defer exampleSDKMu.Unlock()
	prev := util.DefaultHTTPClient
	defer func() { util.DefaultHTTPClient = prev }()
	c := &exampleCaller{e: e, base: base, account: acct, secret: secret}
	op := c.sdk().GetOpenPlatform(&openConfig.Config{AppID: acct.appid, AppSecret: secret,
		Token: acct.token, EncodingAESKey: acct.aesKey, Cache: cache.NewMemory()})
	if _, err := op.SetComponentAccessToken(context.Background(), "a-ticket-the-app-never-received"); err != nil {
		return fmt.Errorf("api_component_token: %v", err)
	}
	info, err := op.QueryAuthCode(res.AuthorizationCode)
	if err != nil || info.Appid != exampleAuthorizer {
		return fmt.Errorf("api_query_auth: %+v, %v", info, err)
	}
	if !trusted && !strings.HasPrefix(info.AccessToken, "gw2.") || info.RefreshToken != "caddy-wechat-managed" {
		return fmt.Errorf("api_query_auth handed the SDK a token of %d characters and a refresh token of %d, not the gateway's",
			len(info.AccessToken), len(info.RefreshToken))
	}
	if _, err := op.RefreshAuthrToken(exampleAuthorizer, info.RefreshToken); err != nil {
		return fmt.Errorf("api_authorizer_token: %v", err)
	}
	menu := op.GetOfficialAccount(exampleAuthorizer).GetMenu()
	if err := menu.SetMenuByJSON(exampleMenu); err != nil {
		return fmt.Errorf("menu/create on behalf of the authorizer: %v", err)
	}
	got, err := menu.GetMenu()
	if err != nil || len(got.Menu.Button) != 1 || got.Menu.Button[0].Key != "TODAY" {
		return fmt.Errorf("menu/get on behalf of the authorizer: %+v, %v", got, err)
	}
	return nil
}

// exerciseTrusted calls a trusted site as its account.
func (e *exampleRun) exerciseTrusted(where, base string, h exampleHandler) {
	acct, ok := e.accounts[h.account]
	if !ok {
		e.t.Errorf("%s: %s: trusted site of unknown account %q", e.file, where, h.account)
		return
	}
	calls := exampleCallsFor(acct.kind, h.levels)
	if len(calls) == 0 {
		e.t.Errorf("%s: %s lets through none of the calls the test knows (%v): add one to exampleCalls", e.file, where, h.levels)
	}
	c := &exampleCaller{e: e, base: base, account: acct, secret: "any-value-on-a-trusted-site", trusted: true}
	for _, call := range calls {
		c.do(where, call)
	}
}

// exerciseClients calls a clients-mode site with every key of every client
// that may use one of the site's accounts.
func (e *exampleRun) exerciseClients(i int, server, where, base string, h exampleHandler) {
	used := false
	for _, client := range e.clients {
		for _, name := range client.accounts {
			acct := e.accounts[name]
			if h.account != "" && h.account != name || h.account == "" && h.kind != "any" && h.kind != acct.kind || len(client.keys) == 0 {
				continue
			}
			used = true
			levels := append(slices.Clip(h.levels), clientLevels(client)...)
			calls := exampleCallsFor(acct.kind, levels)
			for _, key := range client.keys {
				c := &exampleCaller{e: e, base: base, account: acct, secret: key}
				if len(calls) == 0 {
					// Paths the test knows no call of: the key gets a token.
					if _, err := c.gatewayToken(); err != nil {
						e.t.Errorf("%s: %s, client %s, account %s: %v", e.file, where, client.name, name, err)
					}
				}
				for _, call := range calls {
					c.do(where+", client "+client.name, call)
				}
			}
			if len(h.levels) > 0 {
				continue
			}
			c := &exampleCaller{e: e, base: base, account: acct, secret: client.keys[0]}
			// A call outside the client's paths is refused.
			if client.paths != nil {
				for _, call := range exampleCalls {
					if call.kind == acct.kind && call.probe != "" && !pathAllowed(call.path, clientLevels(client)) {
						c.expectRefused(where, client.name, call.path+call.probe)
						break
					}
				}
			}
			// Remember a call to make with the first instance's token on
			// the other instances of a cluster.
			if i == 0 && e.redis != nil && e.cross == nil {
				for _, call := range exampleCallsFor(acct.kind, clientLevels(client)) {
					if call.probe != "" {
						e.cross = &exampleCross{server: server, tokenURL: c.tokenURL(), probe: call.path + call.probe}
						break
					}
				}
			}
		}
	}
	if !used {
		e.t.Errorf("%s: %s: no client may use it", e.file, where)
	}
}

// clientLevels are the path levels a client's `paths` add.
func clientLevels(c exampleClient) [][]string {
	if c.paths == nil {
		return nil
	}
	return [][]string{c.paths}
}

// crossCheck uses a gateway token of the first instance on the others.
func (e *exampleRun) crossCheck(ports []map[string]int) {
	base := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i][e.cross.server]) }
	tok, err := e.tokenFrom(base(0) + e.cross.tokenURL)
	if err != nil {
		e.t.Fatalf("%s: %v", e.file, err)
	}
	for i := 1; i < len(ports); i++ {
		status, body := e.get(base(i) + e.cross.probe + "&access_token=" + url.QueryEscape(tok))
		if status != http.StatusOK || errcodeOf(body) != 0 {
			e.t.Errorf("%s: instance %d refused a gateway token of instance 0: %d %s", e.file, i, status, body)
		} else {
			e.t.Logf("instance %d: %s ok with a gateway token of instance 0", i, e.cross.probe)
		}
	}
}

// checkTokenFetches checks that every account cost WeChat one token at
// most: on a cluster, the instances shared it.
func (e *exampleRun) checkTokenFetches(instances int) {
	counters := e.sim.Counters()
	for label, c := range counters.Tokens {
		if n := c.Token + c.StableToken + c.GetToken; n > 1 {
			e.t.Errorf("%s: %d token calls reached WeChat for %s from %d instance(s); want one", e.file, n, label, instances)
		}
	}
	for appid, c := range counters.Components {
		if c.ComponentToken > 1 {
			e.t.Errorf("%s: %d component token calls reached WeChat for platform %s; want one", e.file, c.ComponentToken, appid)
		}
		for auth, a := range c.Authorizers {
			if a.AuthorizerToken > 1 {
				e.t.Errorf("%s: %d authorizer token calls reached WeChat for %s of platform %s; want one", e.file, a.AuthorizerToken, auth, appid)
			}
		}
	}
}

// get makes a plain GET and returns the status and body (status 0 when the
// request failed).
func (e *exampleRun) get(u string) (int, []byte) {
	resp, err := e.client.Get(u)
	if err != nil {
		e.t.Errorf("%s: GET %s: %v", e.file, u, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// tokenFrom fetches a token with a plain GET of tokenURL.
func (e *exampleRun) tokenFrom(tokenURL string) (string, error) {
	status, body := e.get(tokenURL)
	var a wxAnswer
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil || a.AccessToken == "" {
		return "", fmt.Errorf("token call: %d %s", status, body)
	}
	return a.AccessToken, nil
}

// ticketTap remembers the JS-SDK tickets WeChat hands out, to check the
// gateway's signatures against them.
type ticketTap struct {
	next    http.Handler
	mu      sync.Mutex
	tickets []string
}

func (tt *ticketTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/cgi-bin/ticket/getticket", "/cgi-bin/get_jsapi_ticket", "/cgi-bin/ticket/get":
	default:
		tt.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	tt.next.ServeHTTP(rec, r)
	var a ticketAnswer
	if json.Unmarshal(rec.Body.Bytes(), &a) == nil && a.Ticket != "" {
		tt.mu.Lock()
		tt.tickets = append(tt.tickets, a.Ticket)
		tt.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// signed reports whether signature is the JS-SDK signature of page with
// one of the tickets WeChat handed out.
func (tt *ticketTap) signed(signature, nonce, timestamp, page string) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return slices.ContainsFunc(tt.tickets, func(ticket string) bool {
		return jsSign(ticket, nonce, timestamp, page) == signature
	})
}

// exampleCaller makes calls through one gateway site as one account.
type exampleCaller struct {
	e       *exampleRun
	base    string // http://127.0.0.1:port
	account exampleAccount
	secret  string // the client key; any value on a trusted site
	trusted bool
}

// exampleSDKMu serializes the SDK calls: silenceper/wechat sends every
// request through one package-global HTTP client.
var exampleSDKMu sync.Mutex

// do makes call and reports its failure, naming the example, where and as
// whom.
func (c *exampleCaller) do(where string, call exampleCall) {
	exampleSDKMu.Lock()
	prev := util.DefaultHTTPClient
	err := call.run(c)
	util.DefaultHTTPClient = prev
	exampleSDKMu.Unlock()
	if err != nil {
		c.e.t.Errorf("%s: %s, account %s: %s: %v", c.e.file, where, c.account.name, call.path, err)
	} else {
		c.e.t.Logf("%s, account %s: %s ok", where, c.account.name, call.path)
	}
}

// sdk is a silenceper/wechat instance whose HTTP client sends both WeChat
// hosts to the site. Call it with exampleSDKMu held.
func (c *exampleCaller) sdk() *wechat.Wechat {
	host := strings.TrimPrefix(c.base, "http://")
	wc := wechat.NewWechat()
	wc.SetHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: hostsTransport{
		hosts: map[string]string{"api.weixin.qq.com": host, "qyapi.weixin.qq.com": host},
		next:  c.e.sdkTr,
	}})
	wc.SetCache(cache.NewMemory())
	return wc
}

func (c *exampleCaller) official() *officialaccount.OfficialAccount {
	return c.sdk().GetOfficialAccount(&offConfig.Config{AppID: c.account.appid, AppSecret: c.secret, Cache: cache.NewMemory()})
}

func (c *exampleCaller) mini() *miniprogram.MiniProgram {
	return c.sdk().GetMiniProgram(&miniConfig.Config{AppID: c.account.appid, AppSecret: c.secret, Cache: cache.NewMemory()})
}

func (c *exampleCaller) work() *work.Work {
	return c.sdk().GetWork(&workConfig.Config{CorpID: c.account.appid, CorpSecret: c.secret, AgentID: c.agentID(), Cache: cache.NewMemory()})
}

func (c *exampleCaller) agentID() string {
	if c.account.agentID != "" {
		return c.account.agentID
	}
	return sdkAgentID
}

// tokenURL is the path and query of the token call for the account.
func (c *exampleCaller) tokenURL() string {
	if c.account.kind == simulator.KindWeCom {
		return "/cgi-bin/gettoken?corpid=" + url.QueryEscape(c.account.appid) + "&corpsecret=" + url.QueryEscape(c.secret)
	}
	return "/cgi-bin/token?grant_type=client_credential&appid=" + url.QueryEscape(c.account.appid) + "&secret=" + url.QueryEscape(c.secret)
}

// gatewayToken fetches a gateway token with the client key, as an app
// without an SDK would.
func (c *exampleCaller) gatewayToken() (string, error) {
	tok, err := c.e.tokenFrom(c.base + c.tokenURL())
	if err == nil && !c.trusted && !strings.HasPrefix(tok, "gw2.") {
		err = fmt.Errorf("the token call answered a token (%d chars) that is not a gateway token", len(tok))
	}
	return tok, err
}

// expectRefused checks that a call outside the client's paths is refused
// (48001) and reaches nothing upstream.
func (c *exampleCaller) expectRefused(where, client, pathAndQuery string) {
	tok, err := c.gatewayToken()
	if err != nil {
		c.e.t.Errorf("%s: %s, client %s: %v", c.e.file, where, client, err)
		return
	}
	p, _, _ := strings.Cut(pathAndQuery, "?")
	before := c.e.tap.count(p)
	status, body := c.e.get(c.base + pathAndQuery + "&access_token=" + url.QueryEscape(tok))
	if status != http.StatusOK || errcodeOf(body) != 48001 || c.e.tap.count(p) != before {
		c.e.t.Errorf("%s: %s, client %s: %s outside its paths answered %d %s; want errcode 48001 and nothing upstream", c.e.file, where, client, p, status, body)
	} else {
		c.e.t.Logf("%s, client %s: %s refused, outside its paths", where, client, p)
	}
}

// jssdkConfig asks the site for a wx.config signature and checks it
// against WeChat's ticket (and wx.agentConfig's, for WeCom).
func (c *exampleCaller) jssdkConfig() error {
	q := "/wechat-gateway/jssdk_config?url=" + url.QueryEscape(examplePage+"#top")
	if !c.trusted {
		tok, err := c.gatewayToken()
		if err != nil {
			return err
		}
		q += "&access_token=" + url.QueryEscape(tok)
	}
	status, body := c.e.get(c.base + q)
	type signature struct {
		Timestamp int64  `json:"timestamp"`
		NonceStr  string `json:"nonceStr"`
		Signature string `json:"signature"`
	}
	var a struct {
		Errcode int    `json:"errcode"`
		AppID   string `json:"appId"`
		signature
		Agent *struct {
			CorpID string `json:"corpid"`
			signature
		} `json:"agentConfig"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Errcode != 0 || a.AppID != c.account.appid {
		return fmt.Errorf("answered %d %s", status, body)
	}
	if !c.e.tickets.signed(a.Signature, a.NonceStr, fmt.Sprint(a.Timestamp), examplePage) {
		return fmt.Errorf("wx.config signature %s is not over a ticket WeChat issued", a.Signature)
	}
	if c.account.kind == simulator.KindWeCom {
		if a.Agent == nil || a.Agent.CorpID != c.account.appid ||
			!c.e.tickets.signed(a.Agent.Signature, a.Agent.NonceStr, fmt.Sprint(a.Agent.Timestamp), examplePage) {
			return fmt.Errorf("no valid wx.agentConfig: %s", body)
		}
	}
	return nil
}

// code is a fresh login or OAuth code.
func (c *exampleCaller) code() string {
	return fmt.Sprintf("example-%d", c.e.calls.Add(1))
}

// exampleCall is a call the test knows how to make through a site.
type exampleCall struct {
	kind  string // the kind of account it is an API of
	path  string // the API path, matched against `paths` and path matchers
	basic bool   // made on sites and clients that allow every path
	probe string // for a token-checked GET: the query (after the path) of a plain call
	run   func(c *exampleCaller) error
}

// exampleCallsFor are the calls of kind that the path levels allow: the
// basic ones when nothing limits the paths.
func exampleCallsFor(kind string, levels [][]string) []exampleCall {
	var out []exampleCall
	for _, call := range exampleCalls {
		if call.kind == kind && (len(levels) == 0 && call.basic || len(levels) > 0 && pathAllowed(call.path, levels)) {
			out = append(out, call)
		}
	}
	return out
}

var exampleCalls = []exampleCall{
	{kind: simulator.KindOfficial, path: "/cgi-bin/user/info", basic: true, probe: "?openid=" + sdkOpenID, run: func(c *exampleCaller) error {
		u, err := c.official().GetUser().GetUserInfo(sdkOpenID)
		if err == nil && u.OpenID != sdkOpenID {
			err = fmt.Errorf("answered %+v", u)
		}
		return err
	}},
	{kind: simulator.KindOfficial, path: "/cgi-bin/menu/get", probe: "?", run: func(c *exampleCaller) error {
		m, err := c.official().GetMenu().GetMenu()
		if err == nil && len(m.Menu.Button) == 0 {
			err = fmt.Errorf("answered no buttons: %+v", m)
		}
		return err
	}},
	{kind: simulator.KindOfficial, path: "/cgi-bin/message/custom/send", run: func(c *exampleCaller) error {
		return c.official().GetCustomerMessageManager().Send(message.NewCustomerTextMessage(sdkOpenID, "hello from an example"))
	}},
	{kind: simulator.KindOfficial, path: "/cgi-bin/ticket/getticket", run: func(c *exampleCaller) error {
		cfg, err := c.official().GetJs().GetConfig(examplePage)
		if err == nil && !c.e.tickets.signed(cfg.Signature, cfg.NonceStr, fmt.Sprint(cfg.Timestamp), examplePage) {
			err = fmt.Errorf("the SDK signed with a ticket WeChat did not issue")
		}
		return err
	}},
	{kind: simulator.KindOfficial, path: "/wechat-gateway/jssdk_config", run: (*exampleCaller).jssdkConfig},
	{kind: simulator.KindOfficial, path: "/sns/jscode2session", run: func(c *exampleCaller) error {
		res, err := c.mini().GetAuth().Code2Session(c.code())
		if err == nil && (res.OpenID == "" || res.SessionKey == "") {
			err = fmt.Errorf("answered %+v", res)
		}
		return err
	}},
	{kind: simulator.KindOfficial, path: "/wxa/getwxacodeunlimit", run: func(c *exampleCaller) error {
		img, err := c.mini().GetQRCode().GetWXACodeUnlimit(qrcode.QRCoder{Scene: "id=7", Page: "pages/index/index"})
		if err == nil && !bytes.HasPrefix(img, []byte{0xff, 0xd8, 0xff}) {
			err = fmt.Errorf("answered %d bytes that are no JPEG: %.200q", len(img), img)
		}
		return err
	}},
	{kind: simulator.KindOfficial, path: "/sns/oauth2/access_token", run: func(c *exampleCaller) error {
		tok, err := c.official().GetOauth().GetUserAccessToken(c.code())
		if err == nil && tok.OpenID == "" {
			err = fmt.Errorf("answered no openid")
		}
		return err
	}},
	{kind: simulator.KindWeCom, path: "/cgi-bin/user/get", basic: true, probe: "?userid=" + sdkUserID, run: func(c *exampleCaller) error {
		u, err := c.work().GetAddressList().UserGet(sdkUserID)
		if err == nil && u.UserID != sdkUserID {
			err = fmt.Errorf("answered %+v", u)
		}
		return err
	}},
	{kind: simulator.KindWeCom, path: "/cgi-bin/message/send", run: func(c *exampleCaller) error {
		r, err := c.work().GetMessage().SendText(workMessage.SendTextRequest{
			SendRequestCommon: &workMessage.SendRequestCommon{ToUser: sdkUserID, AgentID: c.agentID()},
			Text:              workMessage.TextField{Content: "hello from an example"},
		})
		if err == nil && r.MsgID == "" {
			err = fmt.Errorf("answered %+v", r)
		}
		return err
	}},
	{kind: simulator.KindWeCom, path: "/wechat-gateway/jssdk_config", run: (*exampleCaller).jssdkConfig},
}

// JSON helpers: the config is decoded into maps and slices.

func jsonObject(v any) map[string]any { m, _ := v.(map[string]any); return m }
func jsonArray(v any) []any           { a, _ := v.([]any); return a }
func jsonString(v any) string         { s, _ := v.(string); return s }

func jsonStrings(v any) []string {
	var out []string
	for _, x := range jsonArray(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
