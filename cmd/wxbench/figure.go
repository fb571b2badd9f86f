package main

import (
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// figure is the layout of a picture of plots: a grid of panels on white
// under a header of a title and a subtitle, centred.
type figure struct {
	cols           int
	panelW, panelH float64 // inches
	header         vg.Length
	dpi            int
	// titleSize and subSize are the font sizes of the header's lines, and
	// titleY and subY how far below the top of the picture they stand.
	titleSize, subSize vg.Length
	titleY, subY       vg.Length
	// padX and padY separate the panels.
	padX, padY vg.Length
}

// write draws plots into the grid, row by row, under title and sub, and
// writes the picture to path as a PNG. The grid has as many rows as the
// plots fill.
func (fg figure) write(path, title, sub string, plots []*plot.Plot) error {
	cols := fg.cols
	rows := (len(plots) + cols - 1) / cols
	width := vg.Length(fg.panelW*float64(cols)) * vg.Inch
	height := vg.Length(fg.panelH*float64(rows))*vg.Inch + fg.header

	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(fg.dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	style := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, fg.titleSize), Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YTop}
	dc.FillText(style, vg.Point{X: width / 2, Y: height - fg.titleY}, title)
	style.Font = font.From(plot.DefaultFont, fg.subSize)
	dc.FillText(style, vg.Point{X: width / 2, Y: height - fg.subY}, sub)

	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: fg.header, PadBottom: vg.Points(6), PadLeft: vg.Points(6),
		PadRight: vg.Points(10), PadX: fg.padX, PadY: fg.padY}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
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
