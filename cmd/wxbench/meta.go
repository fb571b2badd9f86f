package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// meta says when, on what and of which commit a run measured.
type meta struct {
	date      time.Time
	cpu       string
	cores     int
	memGiB    float64
	kernel    string
	goVersion string
	caddy     string
	commit    string
	dirty     bool
	wrk       string
	vegeta    string
}

// collectMeta reads the machine from /proc, the commit from git (read-only
// commands) and the tools' versions.
func collectMeta(root, wrk string) meta {
	m := meta{date: time.Now().UTC(), goVersion: runtime.Version(), wrk: wrk, cores: runtime.NumCPU()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		cores := 0
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), ":")
			k = strings.TrimSpace(k)
			if ok && k == "model name" && m.cpu == "" {
				m.cpu = strings.TrimSpace(v)
			}
			if ok && k == "processor" {
				cores++
			}
		}
		f.Close()
		if cores > 0 {
			m.cores = cores
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				m.memGiB = kb / (1 << 20)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.goVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	m.commit = git("rev-parse", "--short", "HEAD")
	if m.commit == "" {
		m.commit = "unknown"
	}
	m.dirty = git("status", "--porcelain", "--untracked-files=no") != ""
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			switch d.Path {
			case "github.com/tsenart/vegeta/v12":
				m.vegeta = d.Version
			case "github.com/caddyserver/caddy/v2":
				m.caddy = d.Version
			}
		}
	}
	return m
}

// caddyVersion asks the built gateway for its Caddy version.
func caddyVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ""
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	return v
}
