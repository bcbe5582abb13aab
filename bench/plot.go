package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plot writes the pictures a person would rather look at than read: the
// latency percentile curves and the hand-over histograms. It returns the
// files' names.
func (r *Report) plot(dir string) ([]string, error) {
	var out []string
	if r.Latency != nil && len(r.Latency.Rows) > 0 {
		name := "latency-" + r.Engine + ".png"
		if err := r.plotLatency(filepath.Join(dir, name)); err != nil {
			return out, err
		}
		out = append(out, name)
	}
	if r.Latency != nil && len(r.Peers) > 0 {
		name := "latency-peers-" + r.Engine + ".png"
		if err := r.plotPeerLatency(filepath.Join(dir, name)); err != nil {
			return out, err
		}
		out = append(out, name)
	}
	if r.Handover != nil && len(r.Handover.Kinds) > 0 {
		name := "handover-" + r.Engine + ".png"
		if err := r.plotHandover(filepath.Join(dir, name)); err != nil {
			return out, err
		}
		out = append(out, name)
	}
	return out, nil
}

// plotLatency draws the classic HDR percentile plot: latency against
// 1/(1-percentile) on log scales, one curve per rate.
func (r *Report) plotLatency(path string) error {
	p := newLatencyPlot(fmt.Sprintf("Baton on %s: intended send -> terminal latency (%d terminals)", r.Engine, r.Latency.Terminals))
	type curve struct {
		row    LatencyRow
		raw    bool
		colour int
	}
	var curves []curve
	for i, row := range r.Latency.Rows {
		curves = append(curves, curve{row: row, colour: i})
		if raw := r.rawLatency(row.Rate); raw != nil {
			curves = append(curves, curve{row: *raw, raw: true, colour: i})
		}
	}
	for _, cv := range curves {
		var dashes []vg.Length
		width := vg.Points(1.5)
		label := fmt.Sprintf("%.0f items/s", cv.row.Rate)
		if cv.raw {
			dashes, width = []vg.Length{vg.Points(5), vg.Points(3)}, vg.Points(1)
			label = fmt.Sprintf("raw broadcaster, %.0f items/s", cv.row.Rate)
		}
		if err := addLatencyCurve(p, cv.row, plotutil.Color(cv.colour), dashes, width, label); err != nil {
			return err
		}
	}
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// plotHandover draws one histogram per fault kind with its target.
func (r *Report) plotHandover(path string) error {
	var plots []*plot.Plot
	for i, k := range r.Handover.Kinds {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (n=%d)", k.Kind, len(k.Millis))
		p.X.Label.Text = "signal -> successor's first item (ms)"
		p.Y.Label.Text = "hand-overs"
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range k.Millis {
			lo, hi = min(lo, v), max(hi, v)
		}
		lo, hi = min(lo, k.TargetMs), max(hi, k.TargetMs)
		width := max((hi-lo)/12, 1)
		bins := make([]plotter.HistogramBin, int(math.Floor((hi-lo)/width))+1)
		for j := range bins {
			bins[j].Min = lo + float64(j)*width
			bins[j].Max = bins[j].Min + width
		}
		var top float64
		for _, v := range k.Millis {
			j := min(int((v-lo)/width), len(bins)-1)
			bins[j].Weight++
			top = max(top, bins[j].Weight)
		}
		h := &plotter.Histogram{Bins: bins, Width: width, FillColor: plotutil.Color(i)}
		h.LineStyle.Width = vg.Points(0.5)
		h.LineStyle.Color = color.Black
		p.Add(h)
		tl, err := plotter.NewLine(plotter.XYs{{X: k.TargetMs, Y: 0}, {X: k.TargetMs, Y: top + 1}})
		if err != nil {
			return err
		}
		tl.Color = color.RGBA{R: 200, A: 255}
		tl.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(tl)
		p.Legend.Add(fmt.Sprintf("target p99 %.0f ms", k.TargetMs), tl)
		p.Legend.Top = true
		plots = append(plots, p)
	}
	img := vgimg.New(vg.Points(330*float64(len(plots))), vg.Points(300))
	dc := draw.New(img)
	t := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	cs := plot.Align([][]*plot.Plot{plots}, t, dc)
	for j, p := range plots {
		p.Draw(cs[0][j])
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

// addLatencyCurve draws a latency row's percentile curve (x is
// 1/(1-percentile), capped at the sample count) with its legend entry;
// an empty row draws nothing.
func addLatencyCurve(p *plot.Plot, row LatencyRow, c color.Color, dashes []vg.Length, width vg.Length, label string) error {
	var xys plotter.XYs
	n := float64(row.Terminal.Count)
	for _, c := range row.Terminal.Curve {
		x := 1 / (1 - c.Percentile/100)
		if c.Percentile >= 100 || math.IsInf(x, 0) || x > n {
			x = max(n, 1)
		}
		xys = append(xys, plotter.XY{X: x, Y: max(c.Millis, 0.01)})
	}
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return err
	}
	l.Color, l.Dashes, l.Width = c, dashes, width
	if !row.Sustained {
		label += " (not sustained)"
	}
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}

// newLatencyPlot is an HDR percentile plot: latency against
// 1/(1-percentile), both on log scales.
func newLatencyPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}, {Value: 10, Label: "90%"},
		{Value: 100, Label: "99%"}, {Value: 1000, Label: "99.9%"}, {Value: 10000, Label: "99.99%"}, {Value: 100000, Label: "99.999%"}})
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*2, vg.Millimeter*2
	p.Add(plotter.NewGrid())
	return p
}

// plotPeerLatency draws Baton's latency curves beside each peer's, from
// the same run: a colour per system, a line style per rate.
func (r *Report) plotPeerLatency(path string) error {
	p := newLatencyPlot(fmt.Sprintf("Baton on %s beside its peers: intended send -> terminal latency (%d terminals)", r.Engine, r.Latency.Terminals))
	styles := [][]vg.Length{nil, {vg.Points(5), vg.Points(3)}, {vg.Points(1), vg.Points(2)}}
	series := []struct {
		name string
		rows []LatencyRow
	}{{"Baton", r.Latency.Rows}}
	for _, pr := range r.Peers {
		series = append(series, struct {
			name string
			rows []LatencyRow
		}{pr.Peer, pr.Latency})
	}
	for i, s := range series {
		for j, row := range s.rows {
			label := fmt.Sprintf("%s, %.0f items/s", s.name, row.Rate)
			if err := addLatencyCurve(p, row, plotutil.Color(i), styles[j%len(styles)], vg.Points(1.5), label); err != nil {
				return err
			}
		}
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
