// Package summarize is the summary stage: what the Markdown note says above the transcript (a
// summary, chapters with titles that link into it, action items and decisions), made by the
// local language model server the user runs (Summarizer, with the clients of summarize/llm), or
// without one (Extractive).
//
// With a language model, the transcript goes to the model as lines "[H:MM:SS] sentence", in one
// request when it fits the model's context, else in parts whose notes are then merged; every
// answer must say which lines it read, and a part the model did not read whole is halved and
// asked again (see Summarizer.Summarize, and mapreduce.go). The rest of this comment is the
// offline method.
//
// Extractive finds, without any language model, what the note needs. Everything is picked from
// the transcript's own sentences; nothing is rewritten. It is meant for English, runs offline and
// fast (two hours of speech in well under a second), and is deterministic: the same transcript
// always gives the same result.
//
// # Sentences
//
// Sentences turns Whisper segments into sentences with times: text is cut after ".", "?" and
// "!" (not after abbreviations such as "Dr." or "e.g.", nor inside numbers such as 3.5), and
// sentences may run across segments. Whisper often writes long stretches without punctuation,
// or joins read sentences with commas; those are also cut where a segment ends before a pause
// of 0.4 s or more (after a comma only once the sentence has six words), and in any case after
// about 40 words. Word times come from the segments' words, or are spread over a
// segment's text by characters when it has none.
//
// # How sentences are compared
//
// Each sentence becomes a list of its content words: lowercased, without punctuation, without
// the common English words that say nothing about a topic ("the", "and", "okay", "gonna" ...),
// and with endings folded so that "plan", "plans", "planned" and "planning" count as one word.
// Words are weighted by TF-IDF: a word that appears in few sentences says more than one that
// appears everywhere. Two sentences are alike as far as they share weighted words (the cosine
// of their word vectors).
//
// # Chapters
//
// Chapters are found by topic segmentation. For every gap between sentences, the words of the
// sentences just before are compared with those just after (about a minute on each side, at
// most 12 sentences); where the topic changes, that likeness drops. The deepest dips of the
// smoothed curve, strengthened where the speaker paused for two seconds or more, are the
// candidate chapter starts, at least MinChapter apart (60 s, or a sixth of a short recording).
//
// Each candidate is then checked against whole chapters rather than a window:
//
//   - A chapter start moves to where the sentences on either side fit their own chapter best
//     (each sentence's mean likeness to the sentences of the chapter before and after).
//   - A chapter start is kept only when the two chapters really differ: the sentences of each
//     must resemble their own chapter clearly more than the other one (a t statistic over the
//     sentences, whose bar rises slowly with the length of the transcript, and falls to half
//     for chapters that share almost no words, as in a short recording), and the two chapters
//     must share clearly less than they share within themselves. The weakest starts are
//     dropped first, so a recording on one subject keeps a single chapter.
//   - A short chapter that is only the end of one topic and the start of the next is replaced
//     by one start between them; a chapter that hides a clear change gets a start there.
//
// So the number of chapters follows the number of topics, within the duration's limit of one
// per MinChapter. Last, with their number fixed, the chapter starts are placed together where
// the chapters are the most coherent as a whole: where the sentences of every chapter lie
// closest, in sum, to that chapter's overall word profile. This placement is exact (dynamic
// programming), with each start free to move up to halfway to its neighbours; it corrects a
// start that the window curve had put a few minutes off. Each start then settles to the
// sentence where the sentences on either side fit their own chapter best; where a few
// sentences at a topic change share no words with either chapter, so that the words cannot
// tell on which side they belong, the start goes after a pause of a second or more if there is
// one, else to the middle of them. A chapter start can be no more precise than the words: a
// sentence that is on the next topic in meaning but shares no words with it ("Spaghetti is a
// pasta" after sentences on animals) may stay in the chapter before.
//
// A chapter's title is made of its most distinctive words: frequent in it, rare elsewhere, shown as spoken ("Tomatoes, garden and basil"); titles are distinct.
//
// # Summary
//
// Each sentence scores by how central it is: its likeness to its chapter as a whole and to
// the whole transcript (a sentence that many others resemble states the main points). Very
// short (under 6 words) and very long (over 30) sentences score less. The summary takes the
// best sentence of every chapter first (of the longest chapters when there are more chapters
// than summary sentences), then fills up by maximal marginal relevance: the best remaining
// sentence that does not repeat the chosen ones, and never a near-duplicate. It has about 3
// sentences for a short memo, up to 12 for two hours (or Options.MaxSummary), and is given in
// transcript order.
//
// # Action items and decisions
//
// These are found by rules on each sentence, preferring precision over recall. Action items are
// commitments and requests: "I'll send ...", "we need to book ...", "Anna should call ...",
// "let's schedule ...", "please ...", a sentence opening with a verb such as "Send" or
// "Review", "action item", "todo", "follow up", "make sure", deadlines ("is due"). Decisions:
// "we decided", "we agreed", "the decision is", "let's go with", "approved", "we settled on"
// and the like. Questions, negations ("we don't need to") and conditions ("if we need to")
// are not listed, nor announcements of what the speaker is about to say ("I'll explain ...",
// "let's talk about ..."). A decision is not listed again as an action item.
package summarize
