package summarize

import "testing"

func TestClassify(t *testing.T) {
	const (
		none = iota
		action
		decision
	)
	cases := []struct {
		text string
		want int
	}{
		// Action items: commitments, requests, tasks.
		{"I'll send you the slides tonight.", action},
		{"I will update the roadmap before Friday.", action},
		{"We need to book the venue by the end of the month.", action},
		{"We have to renew the certificate.", action},
		{"You need to sign the contract by Friday.", action},
		{"Someone should call the supplier about the delay.", action},
		{"Maria will review the pull request tomorrow.", action},
		{"So Tom should email the client this afternoon.", action},
		{"Let's schedule a follow-up with the design team.", action},
		{"Let's fix the login bug first.", action},
		{"Please send me the invoice.", action},
		{"Action item: update the onboarding docs.", action},
		{"Todo: rotate the API keys.", action},
		{"I'll follow up with legal on the contract.", action},
		{"Make sure the backups run every night.", action},
		{"Don't forget to water the plants.", action},
		{"The report is due on Monday.", action},
		{"I'm going to draft the proposal this week.", action},
		{"We're gonna migrate the database next sprint.", action},
		{"Send the agenda to everyone before the meeting.", action},
		{"I'll talk to finance about the budget.", action},
		{"We'll have to hire two more engineers.", action},
		{"I’ll get back to you on that.", action},
		// Decisions.
		{"We decided to postpone the launch.", decision},
		{"We've agreed on a two-week sprint.", decision},
		{"The team agreed that the API stays backwards compatible.", decision},
		{"The decision is to keep the old pricing.", decision},
		{"Let's go with the second option.", decision},
		{"We're going with Postgres for the new service.", decision},
		{"The budget was approved yesterday.", decision},
		{"We settled on a Tuesday release cadence.", decision},
		{"It was decided to close the Berlin office.", decision},
		{"We all agreed to drop the feature.", decision},
		// Neither.
		{"Should we meet on Friday?", none},
		{"Can you send me the file?", none},
		{"Did we agree on the budget?", none},
		{"We don't need to change anything.", none},
		{"We haven't decided yet.", none},
		{"We never agreed to that.", none},
		{"If we need to, we can postpone the launch.", none},
		{"I'll tell you a story about my trip.", none},
		{"I'm going to talk about our roadmap today.", none},
		{"Let's talk about the budget.", none},
		{"Let's see what happens.", none},
		{"I think the weather will be nice tomorrow.", none},
		{"You will notice that the colours change.", none},
		{"Prices will rise next year.", none},
		{"The report was finished by Friday.", none},
		{"He decided to quit his job.", none},
		{"The bird needs to eat every day.", none},
		{"We went to the market and bought apples.", none},
		{"I will be honest with you.", none},
		{"Let me explain how the pipeline works.", none},
		{"The train was late due to the snow.", none},
		{"Kiwi is a nocturnal flightless bird of New Zealand.", none},
		{"", none},
		{"...", none},
	}
	for _, c := range cases {
		action, decision := classify(c.text)
		got := none
		switch {
		case action && decision:
			t.Errorf("%q: both an action and a decision", c.text)
		case action:
			got = 1
		case decision:
			got = 2
		}
		if got != c.want {
			names := []string{"neither", "an action item", "a decision"}
			t.Errorf("%q: %s, want %s", c.text, names[got], names[c.want])
		}
	}
}
