package chart

import "math"

// lttb picks at most n of the points (xs[i], ys[i]) with the
// largest-triangle-three-buckets method (Steinarsson, "Downsampling Time
// Series for Visual Representation", 2013): it keeps the first and last
// point and, from each bucket in between, the point that spans the largest
// triangle with its neighbours, so peaks — a burst of uploads — survive.
// Points must be sorted by x and finite; the result is a sorted list of
// indices.
func lttb(xs, ys []float64, n int) []int {
	total := len(xs)
	if n >= total || total <= 2 {
		idx := make([]int, total)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	if n < 3 {
		n = 3
	}
	out := make([]int, 0, n)
	out = append(out, 0)
	every := float64(total-2) / float64(n-2)
	a := 0
	for i := 0; i < n-2; i++ {
		// The average of the next bucket is the third corner.
		nextStart := int(math.Floor(float64(i+1)*every)) + 1
		nextEnd := int(math.Floor(float64(i+2)*every)) + 1
		if nextEnd > total {
			nextEnd = total
		}
		var avgX, avgY float64
		if nextStart >= nextEnd {
			avgX, avgY = xs[total-1], ys[total-1]
		} else {
			for j := nextStart; j < nextEnd; j++ {
				avgX += xs[j]
				avgY += ys[j]
			}
			cnt := float64(nextEnd - nextStart)
			avgX /= cnt
			avgY /= cnt
		}
		start := int(math.Floor(float64(i)*every)) + 1
		end := int(math.Floor(float64(i+1)*every)) + 1
		best, bestArea := start, -1.0
		for j := start; j < end && j < total-1; j++ {
			// Halved terms keep the area finite for values near ±1e300.
			area := math.Abs((xs[a]-avgX)*(ys[j]/2-ys[a]/2) - (xs[a]-xs[j])*(avgY/2-ys[a]/2))
			if area > bestArea {
				best, bestArea = j, area
			}
		}
		out = append(out, best)
		a = best
	}
	return append(out, total-1)
}
