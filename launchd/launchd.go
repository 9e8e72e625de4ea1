// Package launchd installs the daemon as a per-user service: a launchd agent on macOS
// (~/Library/LaunchAgents), a systemd user unit on Linux (~/.config/systemd/user), through
// github.com/kardianos/service. The plist and the unit are ours (RenderPlist, RenderUnit, golden
// tested) and handed to kardianos/service as its templates, because its own get several things
// wrong for a user's background service:
//
//   - systemd: WantedBy=multi-user.target, a target the user manager does not have, so the unit
//     never starts at login (kardianos/service PR #415): ours says default.target.
//   - systemd: Restart=always with RestartSec=120 and a start limit of 10 in 5 s: a daemon that
//     exits on a bad configuration is restarted every two minutes forever. Ours restarts on
//     failure after 10 s, at most 5 times in 5 minutes, and runs at a low CPU and I/O priority.
//   - systemd: output to /var/log/<name>.out (a system folder a user cannot write) and an
//     EnvironmentFile in /etc/sysconfig: ours logs to the journal.
//   - launchd: no ProcessType (so macOS applies its default throttling, not the Background
//     class a batch transcriber is), no LowPriorityIO, no ThrottleInterval, KeepAlive true even
//     after a clean exit, RunAtLoad false, logs in the home folder's root, and a minimal PATH
//     without Homebrew's (where ffmpeg lives). Ours: Background, LowPriorityIO, KeepAlive only
//     after a failure with a 30 s throttle, RunAtLoad, logs in ~/Library/Logs/Verbatim.
//   - launchd: Start and Stop run the legacy `launchctl load/unload`, which fails on recent
//     macOS ("Load failed: 5: Input/output error"); ours bootstrap and boot out the agent in the
//     user's GUI domain (launchctl bootstrap gui/UID, bootout).
//   - Install refuses to run over an existing install ("Init already exists"): ours replaces it
//     (stopped, removed, written again), so an upgrade is one install.
package launchd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// Spec is the service to install.
type Spec struct {
	// Name is the systemd unit's name (NAME.service); Label the launchd agent's label (and its
	// plist's name).
	Name, Label string
	// Description is one line about the service.
	Description string
	// Executable is the absolute path of the program, Args its arguments.
	Executable string
	Args       []string
	// LogDir is where a launchd agent's output goes (macOS; systemd logs to the journal).
	LogDir string
	// Env is the program's environment, KEY=VALUE in order: at least PATH (launchd gives agents
	// a minimal one without Homebrew's folder, where ffmpeg lives), and the settings the command
	// that installed the service ran with.
	Env []string
}

// ErrNoServiceManager: this machine has no user service manager to install into (no systemd
// user manager on Linux, no launchd: a container, or a system without systemd).
var ErrNoServiceManager = errors.New("no user service manager on this machine")

var plistTmpl = template.Must(template.New("plist").Funcs(template.FuncMap{"xml": xmlEscape, "key": envKey, "value": envValue}).Parse(
	`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{xml .Label}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{xml .Executable}}</string>
{{- range .Args}}
		<string>{{xml .}}</string>
{{- end}}
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>30</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>LowPriorityIO</key>
	<true/>
	<key>Nice</key>
	<integer>10</integer>
{{- if .Env}}
	<key>EnvironmentVariables</key>
	<dict>
{{- range .Env}}
		<key>{{xml (key .)}}</key>
		<string>{{xml (value .)}}</string>
{{- end}}
	</dict>
{{- end}}
	<key>StandardOutPath</key>
	<string>{{xml .LogDir}}/{{xml .Name}}.log</string>
	<key>StandardErrorPath</key>
	<string>{{xml .LogDir}}/{{xml .Name}}.log</string>
</dict>
</plist>
`))

var unitTmpl = template.Must(template.New("unit").Funcs(template.FuncMap{"exec": execLine, "line": oneLine, "env": envWord}).Parse(
	`[Unit]
Description={{line .Description}}
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
ExecStart={{exec .Executable .Args}}
{{- range .Env}}
Environment={{env .}}
{{- end}}
Restart=on-failure
RestartSec=10
TimeoutStopSec=30
Nice=10
IOSchedulingClass=idle
# Output goes to the journal: journalctl --user -u {{line .Name}}

[Install]
WantedBy=default.target
`))

// RenderPlist returns the launchd agent's plist for s.
func RenderPlist(s Spec) ([]byte, error) {
	var b bytes.Buffer
	if err := plistTmpl.Execute(&b, s); err != nil {
		return nil, fmt.Errorf("render plist: %w", err)
	}
	return b.Bytes(), nil
}

// RenderUnit returns the systemd user unit for s.
func RenderUnit(s Spec) ([]byte, error) {
	var b bytes.Buffer
	if err := unitTmpl.Execute(&b, s); err != nil {
		return nil, fmt.Errorf("render unit: %w", err)
	}
	return b.Bytes(), nil
}

// xmlEscape escapes s for XML text.
func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// execLine is ExecStart's command line: every word double-quoted with systemd's escapes (a
// backslash before a backslash or a double quote), % doubled (specifiers) and $ doubled
// (environment variables), so that paths with spaces and odd characters arrive as they are.
func execLine(exe string, args []string) string {
	var words []string
	for _, w := range append([]string{exe}, args...) {
		words = append(words, quoteWord(w))
	}
	return strings.Join(words, " ")
}

// quoteWord is one double-quoted word of ExecStart, escaped as execLine says.
func quoteWord(w string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$", "\n", `\n`)
	return `"` + r.Replace(w) + `"`
}

// envWord is an Environment= assignment KEY=VALUE, double-quoted: the same escapes as ExecStart's
// but for $, which Environment= does not expand.
func envWord(kv string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "\n", `\n`)
	return `"` + r.Replace(kv) + `"`
}

// envKey and envValue split KEY=VALUE.
func envKey(kv string) string   { k, _, _ := strings.Cut(kv, "="); return k }
func envValue(kv string) string { _, v, _ := strings.Cut(kv, "="); return v }

// oneLine keeps a value on its line of the unit file.
func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
