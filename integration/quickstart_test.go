package integration

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestQuickStart runs the README's first command as a user would: the
// binary with `run` and no config in the repository's root folder, which
// loads ./Caddyfile (gateway on :8080 and :8081, simulator on :8090, admin
// on :2019), and then the README's curl calls.
func TestQuickStart(t *testing.T) {
	for _, port := range []int{8080, 8081, 8090, 2019} {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Fatalf("port %d is taken; the quick start needs it free: %v", port, err)
		} else {
			ln.Close()
		}
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "caddy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(caddyBin, "run")
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		<-done
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://127.0.0.1:2019/config/"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("caddy exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the quick start did not come up")
		}
		time.Sleep(20 * time.Millisecond) // polling for the process to come up
	}

	status, body := get(t, "http://127.0.0.1:8080/cgi-bin/menu/get")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"menu"`)) || !bytes.Contains(body, []byte(`"button"`)) {
		t.Fatalf("menu/get: %d %s", status, body)
	}
	status, body = get(t, "http://127.0.0.1:8081/cgi-bin/user/get?userid=zhangsan")
	if status != http.StatusOK || errcodeOf(body) != 0 || !bytes.Contains(body, []byte(`"userid":"zhangsan"`)) {
		t.Fatalf("WeCom user/get: %d %s", status, body)
	}
	status, body = get(t, "http://127.0.0.1:2019/wechat/accounts")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"has_token":true`)) {
		t.Fatalf("admin accounts: %d %s", status, body)
	}
	logs, _ := os.ReadFile(logPath)
	secrets := []string{"demo-official-secret-0123456789ab", "demo-wecom-secret-0123456789abcdef"}
	assertNoLeaks(t, "the quick start's log", string(logs), secrets, nil)
	assertNoLeaks(t, "the admin API", string(body), secrets, nil)
}
