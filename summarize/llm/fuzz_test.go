package llm

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzOllamaStream: any bytes as Ollama's answer give an Answer or an error, never a panic or a
// hang; an Answer's text is what OnDelta was given, and the reading does not depend on how the
// bytes arrive.
func FuzzOllamaStream(f *testing.F) {
	f.Add([]byte(strings.Join(ollamaLines("llama3.2", []string{"Hello", ", world"}, "stop", 26, 2), "")))
	f.Add([]byte(`{"message":{"content":"cut"}}` + "\n" + `{"done":true,"done_reason":"length","eval_count":1}` + "\n"))
	f.Add([]byte(strings.Join(ollamaLines("m", []string{"a"}, "stop", 1, 1)[:1], "") + `{"error":"model runner has unexpectedly stopped"}` + "\n"))
	f.Add([]byte(`{"model":"m","message":{"role":"assistant","content":"x"},"done":true,"prompt_eval_count":-5}`))
	f.Add([]byte("\r\n\r\n{\"done\":true}\r\n"))
	f.Add([]byte(`{"message":{"content":"\ud800"},"done":true,"done_reason":"` + strings.Repeat("é", 50) + `"}`))
	f.Add([]byte("<html>502 Bad Gateway</html>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, data, readOllamaStream)
	})
}

// FuzzSSEStream: any bytes as an OpenAI-compatible server's event stream give an Answer or an
// error, never a panic or a hang; an Answer's text is what OnDelta was given, and the reading
// does not depend on how the bytes arrive.
func FuzzSSEStream(f *testing.F) {
	f.Add([]byte(strings.Join(sseEvents("qwen", []string{"Hello"}, "stop", 31, 1), "")))
	f.Add([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"cut\"},\"finish_reason\":\"length\"}]}\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n" + `data: {"error":{"message":"boom","code":500}}` + "\n\n"))
	f.Add([]byte("event: error\ndata: {\"error\":\"x\"}\n\n"))
	f.Add([]byte(": ping\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\r\n\r\n"))
	f.Add([]byte("\xef\xbb\xbfdata: {\"choices\":[{\"delta\":{\"content\":null},\"finish_reason\":null}],\"usage\":null}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"b\"}}]}\ndata: more\n\n"))
	f.Add([]byte("data: [DONE]\n\ndata: garbage after\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStream(t, data, readSSEStream)
	})
}

// checkStream reads data with read, whole and in small pieces, and checks what it gives.
func checkStream(t *testing.T, data []byte, read func(io.Reader, func(string)) (Answer, error)) {
	t.Helper()
	var deltas strings.Builder
	ans, err := read(bytes.NewReader(data), func(s string) { deltas.WriteString(s) })
	if err == nil {
		if ans.Text != deltas.String() {
			t.Errorf("Text %q, deltas %q", ans.Text, deltas.String())
		}
		if ans.PromptTokens < 0 || ans.OutputTokens < 0 {
			t.Errorf("negative counts %+v", ans)
		}
	} else if err.Error() == "" {
		t.Error("empty error message")
	}
	ans2, err2 := read(&trickle{data: data}, nil)
	if (err == nil) != (err2 == nil) || ans != ans2 {
		t.Errorf("whole: %+v, %v; in pieces: %+v, %v", ans, err, ans2, err2)
	}
}

// trickle reads data a few bytes at a time (1 to 7, varying), as a network might deliver it.
type trickle struct {
	data []byte
	n    int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.n++
	n := copy(p[:min(len(p), 1+r.n%7)], r.data)
	r.data = r.data[n:]
	return n, nil
}
