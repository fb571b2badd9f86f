package main

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFigures draws both pictures from made-up measurements and checks that
// each is a PNG of the size its panels and header make.
func TestFigures(t *testing.T) {
	m := meta{date: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), cpu: "test cpu", cores: 4, commit: "0123456"}
	var points []jsonPoint
	for i, conns := range []int{16, 64, 256} {
		pt := jsonPoint{conns: conns}
		for j, ms := range []*measure{&pt.base, &pt.gateway} {
			ms.hist = map[int64]int64{int64(100 * (i + j + 1)): 50, int64(900 * (i + j + 1)): 50, int64(3000 * (i + 1)): 1}
		}
		points = append(points, pt)
	}
	var samples []sample
	for i := range 8 {
		s := sample{at: time.Duration(i) * 15 * time.Minute, series: map[string]float64{
			`caddy_wechat_token_remaining_seconds{account="day-stable"}`:                  float64(7200 - 900*i),
			`caddy_wechat_token_calls_total{account="day-token",result="ok"}`:             float64(i / 4),
			`caddy_wechat_calls_total{account="day-wecom",client="app",result="refused"}`: float64(2 * i),
			`caddy_wechat_calls_total{account="day-wecom",client="app",result="passed"}`:  float64(5 * i),
			`caddy_wechat_budget_used{account="day-wecom"}`:                               float64(i),
			`caddy_wechat_guard_tripped{account="day-wecom"}`:                             float64(i % 2),
			`caddy_wechat_token_rejections_total{account="day-stable",reason="invalid"}`:  float64(i / 3),
			`caddy_wechat_replays_total{account="day-stable",result="ok"}`:                float64(i / 3),
		}}
		samples = append(samples, s)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		draw   func(string) error
		wx, wy int // pixels
	}{
		{"latency.png", func(p string) error { return drawLatencyChart(points, m, p) }, 1188, 874},
		{"dashboard.png", func(p string) error { return drawDashboard(samples, m, p) }, 1380, 700},
	} {
		path := filepath.Join(dir, c.name)
		if err := c.draw(path); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.Width != c.wx || cfg.Height != c.wy {
			t.Errorf("%s: %dx%d pixels, want %dx%d", c.name, cfg.Width, cfg.Height, c.wx, c.wy)
		}
	}
	if err := drawLatencyChart(nil, m, filepath.Join(dir, "none.png")); err == nil {
		t.Error("drawLatencyChart drew no measurements")
	}
	if err := drawDashboard(samples[:1], m, filepath.Join(dir, "none.png")); err == nil {
		t.Error("drawDashboard drew one sample")
	}
}
