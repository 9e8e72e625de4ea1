package media

// Phase-inversion rule. Averaging two channels keeps the energy of what they share and halves
// the rest, so for ordinary stereo (correlated, uncorrelated, or one side silent) the mix holds at
// least a quarter of the louder channel's energy (-6 dB). When one channel is the other inverted,
// the mix cancels. We therefore mix unless the mix carries less than a tenth (-10 dB) of the
// louder channel's energy, and that channel is not itself near silence (below -70 dBFS RMS, where
// the comparison means nothing); then we use the louder channel alone.
const (
	mixFloor     = 0.1  // mix energy / louder channel energy under which the mix is rejected
	silenceFloor = 1e-7 // mean square energy (-70 dBFS) under which a channel counts as silent
)

// phaseStats accumulates the energies that decide the downmix of stereo audio.
type phaseStats struct {
	el, er, em float64 // sums of squares of left, right and their mean
	n          int
}

func (p *phaseStats) add(l, r []float32) {
	for i := range l {
		a, b := float64(l[i]), float64(r[i])
		p.el += a * a
		p.er += b * b
		m := (a + b) / 2
		p.em += m * m
	}
	p.n += len(l)
}

// decide applies the phase-inversion rule to what was added.
func (p *phaseStats) decide() Downmix {
	if p.n == 0 {
		return DownmixMix
	}
	loud, pick := p.el, DownmixLeft
	if p.er > p.el {
		loud, pick = p.er, DownmixRight
	}
	if loud/float64(p.n) < silenceFloor || p.em >= mixFloor*loud {
		return DownmixMix
	}
	return pick
}

// chooseDownmix decides how the stereo frames l, r (the first seconds of a stream) become mono.
func chooseDownmix(l, r []float32) Downmix {
	var p phaseStats
	p.add(l, r)
	return p.decide()
}
