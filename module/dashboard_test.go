package caddywechat

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedMetrics returns the names of every metric the gateway exports.
func exportedMetrics() map[string]bool {
	names := make(map[string]bool)
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range append(processMetrics().collectors(), stateCollector{}) {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// TestDashboardNamesExportedMetrics: every expression of the Grafana
// dashboard in examples/ names metrics the gateway exports (a histogram's
// _bucket, _sum and _count included).
func TestDashboardNamesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics()
	if len(exported) < 10 {
		t.Fatalf("only %d metrics exported: %v", len(exported), exported)
	}
	name := regexp.MustCompile(`caddy_wechat_[a-z_]+`)
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			found := name.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: expression %q names no caddy_wechat_ metric", p.Title, tg.Expr)
			}
			for _, n := range found {
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("panel %q: %s is not a metric the gateway exports", p.Title, n)
				}
			}
		}
	}
	if exprs < 8 {
		t.Errorf("the dashboard has only %d expressions", exprs)
	}
}
