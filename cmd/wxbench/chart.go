package main

import (
	"fmt"
	"image/color"
	"os"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
	cols := min(2, len(points))
	rows := (len(points) + cols - 1) / cols
	const panelW, panelH = 5.4, 3.6 // inches
	header := vg.Inch * 0.75
	width := vg.Length(panelW*float64(cols)) * vg.Inch
	height := vg.Length(panelH*float64(rows))*vg.Inch + header

	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	title := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 15), Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YTop}
	dc.FillText(title, vg.Point{X: width / 2, Y: height - vg.Points(8)},
		"Latency of GET /cgi-bin/user/info: Caddy reverse_proxy (baseline) vs Caddy + wechat handler (gateway)")
	sub := title
	sub.Font = font.From(plot.DefaultFont, 10)
	dc.FillText(sub, vg.Point{X: width / 2, Y: height - vg.Points(28)},
		fmt.Sprintf("wrk, closed loop, same connections and duration, rounds alternating; %s, %d cores; commit %s, %s",
			m.cpu, m.cores, m.commit, m.date.Format("2006-01-02")))

	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, pt := range points {
		p, err := latencyPanel(pt, i == 0)
		if err != nil {
			return err
		}
		plots[i/cols][i%cols] = p
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: header, PadBottom: vg.Points(6), PadLeft: vg.Points(6),
		PadRight: vg.Points(10), PadX: vg.Points(18), PadY: vg.Points(14)}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
