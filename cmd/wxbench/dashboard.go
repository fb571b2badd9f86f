package main

import (
	"bufio"
	"fmt"
	"image/color"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// The dashboard section: a second simulated day with events an operator
// watches for (a token revoked by WeChat, a client refused, a guard
// tripped and resumed), the gateway's /metrics scraped every 15 simulated
// minutes, and the panels of examples/grafana-dashboard.json drawn from
// them into examples/grafana-dashboard.png, the picture in the README.

// sample is one scrape: each series's value by name and labels.
type sample struct {
	at     time.Duration
	series map[string]float64 // `name{label="v",...}` -> value
}

// scrapeMetrics reads the gateway's /metrics, keeping caddy_wechat_ series.
func (b *bench) scrapeMetrics(at time.Duration) (sample, error) {
	resp, err := http.Get(b.gw.admin + "/metrics")
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	s := sample{at: at, series: make(map[string]float64)}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_wechat_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			s.series[line[:i]] = v
		}
	}
	return s, sc.Err()
}

// sum adds the series of name whose labels include every one of match.
func (s sample) sum(name string, match ...string) float64 {
	total := 0.0
	for k, v := range s.series {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(k, m)
		}
		if ok {
			total += v
		}
	}
	return total
}

// runDashboard runs the dashboard's day and draws the picture.
func (b *bench) runDashboard() error {
	const step = 15 * time.Minute
	logf("8. the dashboard: a simulated day with a revocation, refused calls and a tripped guard")
	var samples []sample
	gwURL := func(path string) string { return b.gw2URL(path) }
	accounts := []struct{ name, path string }{
		{"day-stable", userInfoPath}, {"day-token", userInfoPath}, {"day-wecom", "/cgi-bin/user/get?userid=zhangsan"},
	}
	for elapsed := time.Duration(0); elapsed <= simDay; elapsed += step {
		if elapsed > 0 {
			if err := b.advanceBoth(step); err != nil {
				return err
			}
		}
		switch elapsed {
		case 4 * time.Hour: // WeChat revokes a token: a rejection, one refresh, a replay
			if err := b.simc.invalidate(appDayStable); err != nil {
				return err
			}
		case 10 * time.Hour: // a client with a forged token, refused
			if b.gwPort3 != 0 {
				for range 20 {
					_, _, _ = get(b.gw3URL(userInfoPath+"&access_token=gw2.forged.token"), nil)
				}
			}
		case 14 * time.Hour: // the WeCom secret stops working: the guard trips
			if err := postJSON(b.simc.base+"/_sim/faults", map[string]any{"path": "/cgi-bin/gettoken", "errcode": 40091}, nil); err != nil {
				return err
			}
			_ = postJSON(b.gw.admin+"/wechat/accounts/day-wecom/refresh", map[string]any{}, nil)
		case 16 * time.Hour: // fixed: the operator resumes
			if err := b.simc.clearFaults(); err != nil {
				return err
			}
			if err := postJSON(b.gw.admin+"/wechat/accounts/day-wecom/resume", map[string]any{}, nil); err != nil {
				return err
			}
		}
		for _, a := range accounts {
			for range 5 {
				_, _, _ = get(gwURL(a.path), http.Header{accountHeader: []string{a.name}})
			}
		}
		s, err := b.scrapeMetrics(elapsed)
		if err != nil {
			return err
		}
		samples = append(samples, s)
	}
	b.res.dashboard = samples
	return nil
}

// dashboardAccounts are the accounts the picture shows.
var dashboardAccounts = []string{"day-stable", "day-token", "day-wecom"}

var seriesColors = []color.Color{
	baselineColor,
	gatewayColor,
	color.RGBA{R: 0x55, G: 0xa8, B: 0x68, A: 0xff},
	color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff},
}

// dashPanel draws lines of y(sample) per label over the day.
func dashPanel(title, yLabel string, samples []sample, lines []string, y func(s, prev sample, line string) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 11
	p.X.Label.Text = "hour of the simulated day"
	p.Y.Label.Text = yLabel
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 8
	for i, line := range lines {
		pts := make(plotter.XYs, 0, len(samples))
		for j, s := range samples {
			prev := s
			if j > 0 {
				prev = samples[j-1]
			}
			pts = append(pts, plotter.XY{X: s.at.Hours(), Y: y(s, prev, line)})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = seriesColors[i%len(seriesColors)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(line, l)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// drawDashboard draws the dashboard's panels from samples into path.
func drawDashboard(samples []sample, m meta, path string) error {
	if len(samples) < 2 {
		return fmt.Errorf("no dashboard samples to draw")
	}
	acct := func(a string) string { return `account="` + a + `"` }
	perHour := float64(time.Hour / (samples[1].at - samples[0].at))
	var clients []string
	for k := range samples[len(samples)-1].series {
		if strings.HasPrefix(k, "caddy_wechat_calls_total{") && strings.Contains(k, `result="refused"`) {
			c := k[strings.Index(k, `client="`)+8:]
			clients = append(clients, "client "+strconv.Quote(c[:strings.IndexByte(c, '"')]))
		}
	}
	sort.Strings(clients)
	clients = uniq(clients)
	panels := []struct {
		title, unit string
		lines       []string
		y           func(s, prev sample, line string) float64
	}{
		{"Token lifetime left", "minutes", dashboardAccounts, func(s, _ sample, a string) float64 {
			return s.sum("caddy_wechat_token_remaining_seconds", acct(a)) / 60
		}},
		{"Token fetches per hour (physical minimum: 0.5)", "fetches / h", dashboardAccounts, func(s, prev sample, a string) float64 {
			return (s.sum("caddy_wechat_token_calls_total", acct(a), `result="ok"`) - prev.sum("caddy_wechat_token_calls_total", acct(a), `result="ok"`)) * perHour
		}},
		{"Rejections and replays", "per 15 min", []string{"rejected (all accounts)", "replayed ok"}, func(s, prev sample, line string) float64 {
			if strings.HasPrefix(line, "rejected") {
				return s.sum("caddy_wechat_token_rejections_total") - prev.sum("caddy_wechat_token_rejections_total")
			}
			return s.sum("caddy_wechat_replays_total", `result="ok"`) - prev.sum("caddy_wechat_replays_total", `result="ok"`)
		}},
		{"Daily budget used (of 1000); guard tripped ×100", "token calls today", append(append([]string{}, dashboardAccounts...), "guard: day-wecom"), func(s, _ sample, line string) float64 {
			if a, ok := strings.CutPrefix(line, "guard: "); ok {
				return 100 * s.sum("caddy_wechat_guard_tripped", acct(a))
			}
			return s.sum("caddy_wechat_budget_used", acct(line))
		}},
		{"Refusals by client", "per 15 min", append([]string{"all clients"}, clients...), func(s, prev sample, line string) float64 {
			match := []string{`result="refused"`}
			if c, ok := strings.CutPrefix(line, "client "); ok {
				u, _ := strconv.Unquote(c)
				match = append(match, `client="`+u+`"`)
			}
			return s.sum("caddy_wechat_calls_total", match...) - prev.sum("caddy_wechat_calls_total", match...)
		}},
		{"Calls passed", "per 15 min", dashboardAccounts, func(s, prev sample, a string) float64 {
			return s.sum("caddy_wechat_calls_total", acct(a), `result="passed"`) - prev.sum("caddy_wechat_calls_total", acct(a), `result="passed"`)
		}},
	}
	plots := make([]*plot.Plot, len(panels))
	for i, pn := range panels {
		p, err := dashPanel(pn.title, pn.unit, samples, pn.lines, pn.y)
		if err != nil {
			return err
		}
		plots[i] = p
	}
	layout := figure{cols: 3, panelW: 4.6, panelH: 3.2, header: vg.Inch * 0.6, dpi: 100,
		titleSize: 14, subSize: 9, titleY: vg.Points(6), subY: vg.Points(24), padX: vg.Points(16), padY: vg.Points(12)}
	return layout.write(path,
		"caddy-wechat dashboard (examples/grafana-dashboard.json) over a simulated day",
		fmt.Sprintf("from the gateway's /metrics every 15 simulated minutes: a revocation at 4 h, a forged client token at 10 h, a WeCom secret failing 14–16 h, then resume; commit %s, %s",
			m.commit, m.date.Format("2006-01-02")),
		plots)
}

func uniq(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
