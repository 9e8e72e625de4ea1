package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/durable"
	"github.com/verbatimhq/verbatim/power"
)

// PowerPolicy says when the queue pauses for the machine's power and heat: while paused the
// worker starts no job (a job running goes on to its end) and nothing is lost; the queue goes
// on when the condition ends. What cannot be read never pauses.
type PowerPolicy struct {
	// OnBattery pauses on battery.
	OnBattery bool
	// BatteryMin, with OnBattery false, pauses on battery while the charge is below this
	// percent (0: never).
	BatteryMin int
	// LowPower pauses while Low Power Mode is on.
	LowPower bool
	// Thermal pauses at this thermal state or worse (power.ThermalUnknown: never).
	Thermal power.Thermal
}

// DefaultPowerPolicy pauses on battery, in Low Power Mode and under serious thermal pressure;
// BatteryMin is for those who turn OnBattery off.
var DefaultPowerPolicy = PowerPolicy{OnBattery: true, BatteryMin: 20, LowPower: true, Thermal: power.ThermalSerious}

// DefaultPowerPoll is how often the power state is read.
const DefaultPowerPoll = 30 * time.Second

// Off reports whether the policy never pauses.
func (p PowerPolicy) Off() bool {
	return !p.OnBattery && p.BatteryMin <= 0 && !p.LowPower && p.Thermal == power.ThermalUnknown
}

// Reason is why the queue pauses in state s ("" when it does not): "on battery", "on battery
// at 15% (below 20%)", "Low Power Mode", "thermal pressure serious".
func (p PowerPolicy) Reason(s power.State) string {
	switch {
	case s.Known.Source && s.OnBattery && p.OnBattery:
		return "on battery"
	case s.Known.Source && s.OnBattery && p.BatteryMin > 0 && s.BatteryPercent >= 0 && s.BatteryPercent < p.BatteryMin:
		return fmt.Sprintf("on battery at %d%% (below %d%%)", s.BatteryPercent, p.BatteryMin)
	case s.Known.LowPower && s.LowPower && p.LowPower:
		return "Low Power Mode"
	case s.Known.Thermal && p.Thermal != power.ThermalUnknown && s.Thermal >= p.Thermal:
		return "thermal pressure " + s.Thermal.String()
	}
	return ""
}

// pausedFile, in the state folder, says why the queue is paused while it is, for `transcribe
// status` (another process).
const pausedFile = "paused.json"

// pause is the queue's pause, as pausedFile holds it.
type pause struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// powerGate reads the power state every poll and pauses the queue by the policy. It logs each
// pause and resume, keeps pausedFile, and wakes the worker when the queue goes on.
type powerGate struct {
	r        power.Reader
	policy   PowerPolicy
	poll     time.Duration
	stateDir string
	log      zerolog.Logger
	resumed  chan struct{} // a send when the queue goes on

	mu      sync.Mutex
	now     pause // Reason "" while not paused
	lastErr string
}

func newPowerGate(c Config) *powerGate {
	g := &powerGate{r: c.Power, policy: c.PowerPolicy, poll: c.PowerPoll, stateDir: c.StateDir,
		log: c.Log.With().Str("component", "power").Logger(), resumed: make(chan struct{}, 1)}
	if g.poll <= 0 {
		g.poll = DefaultPowerPoll
	}
	return g
}

// paused is why the queue is paused, "" when it is not. A nil gate never pauses.
func (g *powerGate) paused() string {
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now.Reason
}

// check reads the state and pauses or resumes the queue.
func (g *powerGate) check() {
	s, err := g.r.Read()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		if err.Error() != g.lastErr { // said once, not every poll
			g.log.Warn().Err(err).Msg("the power state cannot be read: the queue does not pause for it")
		}
		g.lastErr = err.Error()
	} else {
		g.lastErr = ""
	}
	reason := g.policy.Reason(s)
	switch {
	case reason == g.now.Reason:
		return
	case reason == "":
		g.log.Info().Str("was", g.now.Reason).Dur("paused_for", time.Since(g.now.Since).Round(time.Second)).
			Str("power", s.String()).Msg("queue resumed")
		g.now = pause{}
		os.Remove(filepath.Join(g.stateDir, pausedFile))
		select {
		case g.resumed <- struct{}{}:
		default:
		}
	default:
		if g.now.Reason == "" {
			g.now.Since = time.Now()
		}
		g.now.Reason = reason
		g.log.Info().Str("reason", reason).Str("power", s.String()).
			Msg("queue paused: " + reason + " (a job running goes on to its end; the others wait)")
		if b, err := json.Marshal(g.now); err == nil {
			if err := durable.WriteFile(filepath.Join(g.stateDir, pausedFile), b, 0o600); err != nil {
				g.log.Warn().Err(err).Msg("cannot record the pause for `transcribe status`")
			}
		}
	}
}

// run checks every poll until ctx ends, and then removes pausedFile.
func (g *powerGate) run(ctx context.Context) {
	defer os.Remove(filepath.Join(g.stateDir, pausedFile))
	t := time.NewTicker(g.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.check()
		}
	}
}

// readPause reads the pause a running daemon recorded in its state folder dir.
func readPause(dir string) (pause, bool) {
	b, err := os.ReadFile(filepath.Join(dir, pausedFile))
	if err != nil {
		return pause{}, false
	}
	var p pause
	if json.Unmarshal(b, &p) != nil || p.Reason == "" {
		return pause{}, false
	}
	return p, true
}

// PowerSettings is the policy, the poll and whether to keep the system awake while jobs run,
// from the configuration file's [power] table over the defaults. The table was checked when the
// file was read (config.ParseFile).
func PowerSettings(p config.Power) (policy PowerPolicy, poll time.Duration, preventSleep bool) {
	policy, poll, preventSleep = DefaultPowerPolicy, DefaultPowerPoll, true
	if p.PauseOnBattery != nil {
		policy.OnBattery = *p.PauseOnBattery
	}
	if p.BatteryMinPercent != nil {
		policy.BatteryMin = *p.BatteryMinPercent
	}
	if p.PauseOnLowPower != nil {
		policy.LowPower = *p.PauseOnLowPower
	}
	if p.PauseOnThermal != nil {
		policy.Thermal, _ = power.ParseThermal(*p.PauseOnThermal) // "off": unknown, never
	}
	if p.Poll != nil {
		poll = time.Duration(*p.Poll)
	}
	if p.PreventSleep != nil {
		preventSleep = *p.PreventSleep
	}
	return policy, poll, preventSleep
}
