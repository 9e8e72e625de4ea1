package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/verbatimhq/verbatim/cpu"
	"github.com/verbatimhq/verbatim/daemon/api"
	"github.com/verbatimhq/verbatim/daemon/config"
	"github.com/verbatimhq/verbatim/internal/testkit"
	"github.com/verbatimhq/verbatim/pipeline"
	"github.com/verbatimhq/verbatim/power"
	"github.com/verbatimhq/verbatim/sidecar"
	"github.com/verbatimhq/verbatim/tensor"
	"github.com/verbatimhq/verbatim/whisper"
	"github.com/verbatimhq/verbatim/whisper/weights"
)

func TestPowerPolicyReason(t *testing.T) {
	known := power.Known{Source: true, LowPower: true, Thermal: true}
	battery := func(pct int) power.State {
		return power.State{OnBattery: true, BatteryPercent: pct, Thermal: power.ThermalNominal, Known: known}
	}
	ac := power.State{BatteryPercent: 80, Thermal: power.ThermalNominal, Known: known}
	noBattery := DefaultPowerPolicy
	noBattery.OnBattery = false
	cases := []struct {
		p    PowerPolicy
		s    power.State
		want string
	}{
		{DefaultPowerPolicy, ac, ""},
		{DefaultPowerPolicy, battery(90), "on battery"},
		{DefaultPowerPolicy, power.Unknown(), ""},
		{DefaultPowerPolicy, power.State{OnBattery: true, BatteryPercent: 5}, ""}, // not known: never pauses
		{noBattery, battery(90), ""},
		{noBattery, battery(15), "on battery at 15% (below 20%)"},
		{noBattery, battery(-1), ""}, // the charge unknown
		{PowerPolicy{}, battery(1), ""},
		{DefaultPowerPolicy, power.State{LowPower: true, Known: known, Thermal: power.ThermalNominal}, "Low Power Mode"},
		{PowerPolicy{}, power.State{LowPower: true, Known: known}, ""},
		{DefaultPowerPolicy, power.State{Thermal: power.ThermalFair, Known: known}, ""},
		{DefaultPowerPolicy, power.State{Thermal: power.ThermalSerious, Known: known}, "thermal pressure serious"},
		{DefaultPowerPolicy, power.State{Thermal: power.ThermalCritical, Known: known}, "thermal pressure critical"},
		{DefaultPowerPolicy, power.State{Thermal: power.ThermalCritical}, ""},
		{PowerPolicy{Thermal: power.ThermalFair}, power.State{Thermal: power.ThermalFair, Known: known}, "thermal pressure fair"},
	}
	for _, c := range cases {
		if got := c.p.Reason(c.s); got != c.want {
			t.Errorf("%+v in %+v: %q, want %q", c.p, c.s, got, c.want)
		}
	}
	if !(PowerPolicy{}).Off() || DefaultPowerPolicy.Off() || noBattery.Off() {
		t.Error("Off")
	}
}

func TestPowerSettings(t *testing.T) {
	f, err := config.ParseFile("d.toml", []byte(""))
	if err != nil {
		t.Fatal(err)
	}
	p, poll, awake := PowerSettings(f.Power)
	if p != DefaultPowerPolicy || poll != DefaultPowerPoll || !awake {
		t.Errorf("defaults: %+v %v %v", p, poll, awake)
	}
	f, err = config.ParseFile("d.toml", []byte("[power]\npause_on_battery = false\nbattery_min_percent = 35\n"+
		"pause_on_low_power = false\npause_on_thermal = \"off\"\npoll = \"5s\"\nprevent_sleep = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, poll, awake = PowerSettings(f.Power)
	if want := (PowerPolicy{BatteryMin: 35}); p != want || poll != 5*time.Second || awake {
		t.Errorf("set: %+v %v %v", p, poll, awake)
	}
	f, _ = config.ParseFile("d.toml", []byte("[power]\npause_on_thermal = \"critical\"\n"))
	if p, _, _ := PowerSettings(f.Power); p.Thermal != power.ThermalCritical || !p.OnBattery {
		t.Errorf("critical: %+v", p)
	}
	for _, bad := range []string{"battery_min_percent = 101", "battery_min_percent = -1", `pause_on_thermal = "hot"`,
		`pause_on_thermal = "nominal"`, `poll = "10ms"`, "pause_on_batery = true"} {
		if _, err := config.ParseFile("d.toml", []byte("[power]\n"+bad+"\n")); err == nil || !strings.Contains(err.Error(), "power.") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// The daemon with a fake sysfs tree: a real daemon (real SQLite queue, real HTTP over loopback,
// the watcher on a real folder) transcribing with a random-weight micro model on the CPU.

var (
	powerModelOnce sync.Once
	powerModel     string
	powerModelErr  error
)

func microModel(t *testing.T) string {
	t.Helper()
	powerModelOnce.Do(func() {
		dir, err := testkit.SharedDir("daemon-test-")
		if err != nil {
			powerModelErr = err
			return
		}
		cfg, _ := weights.Arch("micro")
		powerModel, powerModelErr = whisper.WriteSynth(filepath.Join(dir, "micro.bin"),
			whisper.SynthOptions{Config: cfg, DType: tensor.F32, Seed: 3, Format: weights.GGML})
	})
	if powerModelErr != nil {
		t.Fatal(powerModelErr)
	}
	return powerModel
}

// sysfsTree is a fake /sys/class/power_supply: a mains supply and a battery.
type sysfsTree struct{ dir string }

func newSysfsTree(t *testing.T, onBattery bool) *sysfsTree {
	s := &sysfsTree{dir: t.TempDir()}
	for _, d := range []string{"AC", "BAT0"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.write(t, map[string]string{"AC/type": "Mains\n", "BAT0/type": "Battery\n", "BAT0/capacity": "64\n", "BAT0/scope": "System\n"})
	s.set(t, onBattery)
	return s
}

// write writes attribute files, each at once (a rename), as the kernel shows them.
func (s *sysfsTree) write(t *testing.T, files map[string]string) {
	t.Helper()
	for name, v := range files {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p+".new", []byte(v), 0o644); err != nil {
			t.Error(err) // not Fatal: also called from the daemon's worker
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Error(err)
		}
	}
}

// set plugs the mains in (false) or out (true).
func (s *sysfsTree) set(t *testing.T, onBattery bool) {
	if onBattery {
		s.write(t, map[string]string{"AC/online": "0\n", "BAT0/status": "Discharging\n"})
	} else {
		s.write(t, map[string]string{"AC/online": "1\n", "BAT0/status": "Charging\n"})
	}
}

// awake is an Inhibitor that counts: the assertions taken, those held now, and onAcquire, if
// set, runs at each Acquire.
type awake struct {
	mu             sync.Mutex
	taken, holding int
	onAcquire      func()
}

func (a *awake) Acquire(reason string) (func(), error) {
	a.mu.Lock()
	a.taken++
	a.holding++
	f := a.onAcquire
	a.mu.Unlock()
	if f != nil {
		f()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			a.holding--
			a.mu.Unlock()
		})
	}, nil
}

func (a *awake) counts() (taken, holding int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.taken, a.holding
}

// syncBuffer is the daemon's log, written by its goroutines and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines are the log's JSON lines.
func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	data := append([]byte(nil), s.b.Bytes()...)
	s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := map[string]any{}
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// has reports whether a log line's message starts with prefix.
func (s *syncBuffer) has(prefix string) bool {
	for _, l := range s.lines() {
		if m, _ := l["message"].(string); strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// powerDaemon is a running daemon watching a folder, with its power read from a fake tree.
type powerDaemon struct {
	watch, state, addr, token string
	tree                      *sysfsTree
	awake                     *awake
	log                       *syncBuffer
}

// startPowerDaemon starts a daemon whose power is read from tree, kept awake by aw, logging
// to log.
func startPowerDaemon(t *testing.T, tree *sysfsTree, aw *awake, log *syncBuffer) *powerDaemon {
	t.Helper()
	model := microModel(t)
	d := &powerDaemon{watch: t.TempDir(), state: t.TempDir(), tree: tree, awake: aw, log: log}
	enabled := true
	defaults := config.Folder{Enabled: &enabled, Formats: []string{"srt"}}
	c := Config{
		Version: "test", StateDir: d.state, Addr: "127.0.0.1:0", Roots: []string{d.watch},
		Settle: 200 * time.Millisecond, Rescan: time.Second, IdleUnload: time.Minute, MaxAttempts: 2, Batch: 1,
		Tree: config.NewTree(defaults, nil),
		Options: func(f config.Folder) (pipeline.Options, string, error) {
			opts := pipeline.DefaultOptions()
			opts.Decode.Language, opts.Decode.BeamSize, opts.Decode.BestOf = "en", 1, 1
			opts.Decode.NoFallback, opts.Decode.Temperatures, opts.Decode.WordTimestamps = true, []float64{0}, false
			opts.Formats, opts.NoVAD = []sidecar.Format{sidecar.FormatSRT}, true
			return opts, model, nil
		},
		ModelHash: func(context.Context, string) (string, error) { return "micro", nil },
		Load: func(_ context.Context, path string) (*pipeline.Runner, func(), error) {
			b, err := cpu.New(cpu.Options{Threads: 2})
			if err != nil {
				return nil, nil, err
			}
			m, err := whisper.Load(path, b)
			if err != nil {
				b.Close()
				return nil, nil, err
			}
			r, err := pipeline.NewRunner(m, path, nil, "test")
			if err != nil {
				m.Close()
				b.Close()
				return nil, nil, err
			}
			return r, func() { m.Close(); b.Close() }, nil
		},
		Log:         zerolog.New(d.log).With().Timestamp().Logger(),
		Power:       power.NewSysfs(d.tree.dir),
		PowerPolicy: DefaultPowerPolicy,
		PowerPoll:   50 * time.Millisecond,
		Awake:       aw,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the daemon did not stop within 30 s")
		}
	})
	waitFor(t, "the daemon's start", func() bool {
		for _, l := range d.log.lines() {
			if a, ok := l["addr"].(string); ok && l["message"] == "listening" {
				d.addr = a
			}
		}
		return d.addr != "" && d.log.has("daemon started")
	}, d)
	tok, err := api.LoadToken(d.state)
	if err != nil {
		t.Fatal(err)
	}
	d.token = tok
	return d
}

// waitFor polls cond until it holds, failing the test after a minute (a bound for a stuck
// daemon, not a claim about its speed).
func waitFor(t *testing.T, what string, cond func() bool, d *powerDaemon) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			var log strings.Builder
			for _, l := range d.log.lines() {
				fmt.Fprintln(&log, l)
			}
			t.Fatalf("waiting for %s: not after a minute; the log:\n%s", what, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get GETs an API route, with the token, into v.
func (d *powerDaemon) get(t *testing.T, route string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.addr+route, nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", route, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// job is the API's view of the job for path (GET /v1/jobs/{id}, its id from the log's
// "queued" line), if it was queued.
func (d *powerDaemon) job(t *testing.T, path string) (api.Job, bool) {
	t.Helper()
	for _, l := range d.log.lines() {
		if id, ok := l["job"].(float64); ok && l["message"] == "queued" && l["path"] == path {
			var j api.Job
			d.get(t, fmt.Sprintf("/v1/jobs/%d", int64(id)), &j)
			return j, true
		}
	}
	return api.Job{}, false
}

// speech writes a short tone (the micro model's text is noise: what matters is that the job
// runs) into the watched folder.
func (d *powerDaemon) speech(t *testing.T, name string) string {
	t.Helper()
	samples := make([]float32, 16000*2)
	for i := range samples {
		samples[i] = float32(0.3 * math.Sin(2*math.Pi*220*float64(i)/16000))
	}
	p := filepath.Join(d.watch, name)
	testkit.WriteWAV(t, p, samples, 16000)
	return p
}

// TestPowerPauseOnBattery: a job queued while on battery waits, and says why where users look
// (the API's job, /healthz, `transcribe status`, the log); once the mains is back it runs,
// with the system kept awake only while it does.
func TestPowerPauseOnBattery(t *testing.T) {
	aw := &awake{}
	d := startPowerDaemon(t, newSysfsTree(t, true), aw, &syncBuffer{})
	if !d.log.has("queue paused: on battery") {
		t.Error("the log does not say the queue is paused on battery from the start")
	}
	wav := d.speech(t, "a.wav")
	waitFor(t, "the job to be queued", func() bool { _, ok := d.job(t, wav); return ok }, d)
	// A few polls later the job still waits: nothing starts while paused.
	time.Sleep(500 * time.Millisecond)
	j, _ := d.job(t, wav)
	if j.State != "queued" || j.Paused != "on battery" {
		t.Errorf("the job on battery: state %s, paused %q; want queued, paused on battery", j.State, j.Paused)
	}
	if taken, _ := aw.counts(); taken != 0 {
		t.Errorf("the system was kept awake %d times while paused", taken)
	}
	var health map[string]string
	d.get(t, "/healthz", &health)
	if health["paused"] != "on battery" {
		t.Errorf("/healthz while paused: %v", health)
	}
	s, err := ReadStatus(context.Background(), d.state, 5)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.Write(&out, time.Now())
	if s.Paused != "on battery" || s.PausedSince == nil || !strings.Contains(out.String(), "queue: paused: on battery since ") {
		t.Errorf("status while paused: %+v\n%s", s, out.String())
	}

	d.tree.set(t, false) // the mains is back
	waitFor(t, "the job to be done", func() bool { j, _ := d.job(t, wav); return j.State == "done" }, d)
	if _, err := os.Stat(strings.TrimSuffix(wav, ".wav") + ".srt"); err != nil {
		t.Errorf("no sidecar: %v", err)
	}
	if !d.log.has("queue resumed") {
		t.Error("the log does not say the queue resumed")
	}
	waitFor(t, "the sleep assertion's release", func() bool { _, holding := aw.counts(); return holding == 0 }, d)
	if taken, _ := aw.counts(); taken < 1 {
		t.Error("the system was not kept awake while the job ran")
	}
	health = nil
	d.get(t, "/healthz", &health)
	if _, ok := health["paused"]; ok {
		t.Errorf("/healthz after resuming: %v", health)
	}
	if s, err := ReadStatus(context.Background(), d.state, 5); err != nil || s.Paused != "" {
		t.Errorf("status after resuming: %+v, %v", s, err)
	}
}

// TestPowerPauseWhileRunning: the mains unplugged once the worker has taken a job lets that job
// run to its end; the next one waits until the mains is plugged in again.
func TestPowerPauseWhileRunning(t *testing.T) {
	aw := &awake{}
	tree, log := newSysfsTree(t, false), &syncBuffer{}
	var once sync.Once
	aw.onAcquire = func() {
		// The first round starts (its job taken, the model loaded): unplug, and let the daemon
		// see it before the job runs.
		once.Do(func() {
			tree.set(t, true)
			for deadline := time.Now().Add(time.Minute); !log.has("queue paused: on battery"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Error("the daemon did not pause within a minute of the unplugging")
					return
				}
			}
		})
	}
	d := startPowerDaemon(t, tree, aw, log)
	first := d.speech(t, "first.wav")
	waitFor(t, "the first job to be done", func() bool { j, _ := d.job(t, first); return j.State == "done" }, d)
	paused, started := -1, -1
	for i, l := range d.log.lines() {
		if m, _ := l["message"].(string); strings.HasPrefix(m, "queue paused") && paused < 0 {
			paused = i
		} else if m == "transcribing" && l["path"] == first && started < 0 {
			started = i
		}
	}
	if paused < 0 || started < paused {
		t.Errorf("the first job did not start after the pause (log lines %d, %d): the test did not test that", paused, started)
	}
	second := d.speech(t, "second.wav")
	waitFor(t, "the second job to be queued", func() bool { _, ok := d.job(t, second); return ok }, d)
	time.Sleep(500 * time.Millisecond)
	if j, _ := d.job(t, second); j.State != "queued" || j.Paused != "on battery" {
		t.Errorf("the second job on battery: state %s, paused %q", j.State, j.Paused)
	}
	if _, holding := aw.counts(); holding != 0 {
		t.Errorf("%d sleep assertions held while paused with no job running", holding)
	}
	d.tree.set(t, false)
	waitFor(t, "the second job to be done", func() bool { j, _ := d.job(t, second); return j.State == "done" }, d)
}
