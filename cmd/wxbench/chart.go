package main

import (
	"fmt"
	"image/color"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the chart: the baseline in slate blue, the gateway in orange.
var (
	baselineColor = color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}
	gatewayColor  = color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}
)

// drawLatencyChart draws latency.png: one panel per concurrency of
// section 1, each with p50, p90 and p99 of the baseline and the gateway
// side by side, in milliseconds, with the values written on the bars.
func drawLatencyChart(points []jsonPoint, m meta, path string) error {
	if len(points) == 0 {
		return fmt.Errorf("no small-JSON measurements to draw")
	}
	plots := make([]*plot.Plot, len(points))
	for i, pt := range points {
		p, err := latencyPanel(pt, i == 0)
		if err != nil {
			return err
		}
		plots[i] = p
	}
	layout := figure{cols: min(2, len(points)), panelW: 5.4, panelH: 3.6, header: vg.Inch * 0.75, dpi: 110,
		titleSize: 15, subSize: 10, titleY: vg.Points(8), subY: vg.Points(28), padX: vg.Points(18), padY: vg.Points(14)}
	return layout.write(path,
		"Latency of GET /cgi-bin/user/info: Caddy reverse_proxy (baseline) vs Caddy + wechat handler (gateway)",
		fmt.Sprintf("wrk, closed loop, same connections and duration, rounds alternating; %s, %d cores; commit %s, %s",
			m.cpu, m.cores, m.commit, m.date.Format("2006-01-02")),
		plots)
}

// latencyPanel is the panel of one concurrency.
func latencyPanel(pt jsonPoint, legend bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%d connection%s", pt.conns, map[bool]string{true: "", false: "s"}[pt.conns == 1])
	p.Title.TextStyle.Font.Size = 13
	p.Y.Label.Text = "latency (ms)"
	p.Y.Min = 0
	p.X.Tick.Label.Font.Size = 12
	p.Y.Tick.Label.Font.Size = 10
	grid := plotter.NewGrid()
	grid.Vertical.Width = 0 // the categories need no vertical lines
	p.Add(grid)
	p.Y.Tick.Marker = msTicks{}

	pcts := []float64{50, 90, 99}
	ms := func(m *measure) plotter.Values {
		v := make(plotter.Values, len(pcts))
		for i, q := range pcts {
			v[i] = float64(m.percentile(q)) / float64(time.Millisecond)
		}
		return v
	}
	baseVals, gwVals := ms(&pt.base), ms(&pt.gateway)
	w := vg.Points(34)
	var maxV float64
	for i, series := range []struct {
		name string
		vals plotter.Values
		col  color.Color
	}{{"baseline: reverse_proxy", baseVals, baselineColor}, {"gateway: wechat + reverse_proxy", gwVals, gatewayColor}} {
		bars, err := plotter.NewBarChart(series.vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = series.col
		bars.LineStyle.Width = 0
		offset := -w / 2
		if i == 1 {
			offset = w / 2
		}
		bars.Offset = offset
		p.Add(bars)
		if legend {
			p.Legend.Add(series.name, bars)
		}
		xys := make(plotter.XYs, len(series.vals))
		labels := make([]string, len(series.vals))
		for j, v := range series.vals {
			xys[j] = plotter.XY{X: float64(j), Y: v}
			labels[j] = fmt.Sprintf("%.2f", v)
			maxV = max(maxV, v)
		}
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for j := range l.TextStyle {
			l.TextStyle[j].XAlign = draw.XCenter
			l.TextStyle[j].Font.Size = 9
		}
		l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
		p.Add(l)
	}
	p.Y.Max = maxV * 1.3 // room for the labels and the legend
	p.NominalX("p50", "p90", "p99")
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = 10
	return p, nil
}

// msTicks are gonum's default ticks labelled without trailing zeros.
type msTicks struct{}

func (msTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'g', 4, 64)
		}
	}
	return ticks
}
