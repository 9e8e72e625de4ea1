#!/usr/bin/env python3
"""Writes the tokenizer's golden text set: one JSON string per line (so cases may hold newlines).

Deterministic (fixed seed, embedded word lists, standard library only). Regenerate with

    python3 tools/reference/tokenizer_texts.py > whisper/tokenizer/testdata/texts.txt
"""
import json
import random
import sys

ENGLISH = """the quick brown fox jumps over lazy dog and so my fellow Americans ask not what your
country can do for you transcription whisper model audio subtitle meeting notes tomorrow
Wednesday February rhythm queue psychology naïve café résumé Hello world OpenAI GPU CUDA Metal
don't won't it's they're we've I'm you'll she'd I'll HELLO WORLD iPhone macOS e-mail co-operate
state-of-the-art Mr. Mrs. Dr. etc. vs. U.S.A. well-known""".split()

GERMAN = """Straße Übergröße Grüße schön Mädchen Fußball Äpfel Öl über für Donaudampfschifffahrt
Entschuldigung Wörterbuch Bundesverfassungsgericht Käse Brötchen heißt ich bin müde morgen""".split()

FRENCH_SPANISH = """français garçon œuvre Noël où déjà l'homme c'est qu'il aujourd'hui jusqu'à
niño mañana corazón ¿Qué tal? ¡Hola! pingüino acción""".split()

CHINESE = ["你好", "世界", "中文", "语音识别", "我们今天开会", "谢谢", "北京", "上海",
           "这是一个测试", "人工智能", "天气很好", "一二三", "〇", "二十一世纪", "你们好吗？"]

JAPANESE = ["こんにちは", "ありがとう", "日本語", "カタカナ", "ひらがな", "東京タワー",
            "音声認識のテスト", "ｶﾀｶﾅ", "ー", "すみません、", "今日は晴れです。", "１２３"]

KOREAN = ["안녕하세요", "감사합니다", "한국어", "음성 인식"]

ARABIC = ["مرحبا", "العالم", "شكرا", "السلام عليكم", "اللغة العربية", "٠١٢٣٤٥٦٧٨٩", "كتاب"]

OTHER_SCRIPTS = ["Привет", "мир", "Здравствуйте", "Ελληνικά", "שלום", "नमस्ते", "हिन्दी",
                 "สวัสดี", "ภาษาไทย", "ሰላም", "ᠮᠣᠩᠭᠣᠯ", "Tiếng Việt", "Türkçe", "Ąžuolas",
                 "ქართული", "Հայերեն", "தமிழ்", "ಕನ್ನಡ", "ລາວ", "မြန်မာ", "བོད་ཡིག"]

EMOJI = ["😀", "👍", "👍🏽", "🎉", "❤️", "🤷‍♂️", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇩🇪", "🇯🇵",
         "🇺🇳", "🏴‍☠️", "🧑🏿‍💻", "☕", "♪", "♪♪", "♫", "♬", "♩", "♭", "♯", "✓", "★", "🙂🙃",
         "1️⃣", "#️⃣", "👩‍❤️‍💋‍👨", "🐈‍⬛", "🫠"]

CODE = ["func main() {\n\tfmt.Println(\"hi\")\n}", "for i := 0; i < n; i++ {", "x += y * 2",
        "if (a && b) || !c { return nil }", "def f(x):\n    return x**2", "print('hello')",
        "SELECT * FROM users WHERE id = 42;", "<div class=\"x\">&nbsp;</div>", "a->b->c",
        "#include <stdio.h>", "// comment", "/* block */", "x = [1, 2, 3]", "{\"key\": [true, null]}",
        "$HOME/.config", "C:\\Users\\me", "https://example.com/a?b=c&d=e", "user@example.com",
        "@@ -1,3 +1,4 @@", "=> ->> <<= >>= != ===", "#!/bin/sh\nset -eu", "`code`", "~/src/*.go"]

NUMBERS = ["0", "1", "42", "3.14159", "1,000,000", "2024-06-01", "12:30", "+1 (555) 123-4567",
           "100%", "$9.99", "€5", "½", "¾", "²", "Ⅻ", "①", "٣", "१२३", "1e-9", "0x1F", "007",
           "123456789012345678901234567890", "3rd", "21st", "1990s", "4K", "v1.2.3"]

CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M",
                "'LL", "'D", "'x", "''", "'", "’s", "don't", "DON'T", "y'all", "rock 'n' roll",
                "'tis", "'twas", "o'clock", "it's", "IT'S", "we'd've", "'s'", "''s"]

PUNCT = [".", ",", "!", "?", "...", "—", "–", "-", "--", "---", "(", ")", "[", "]", "{", "}",
         "\"", "“", "”", "«", "»", "„", "「", "」", "『", "』", "<<", ">>", "(\"", "('", "((",
         "))", "[[", "]]", "-(", "-[", ":", ";", "*", "/", "\\", "|", "~", "^", "_", "`", "@",
         "#", "+", "=", "<", ">", "&", "%", "…", "·", "•", "§", "¶", "©", "®", "™", "°"]

SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t ",
          "\u00a0", "\u3000", "\u2003", "\u2009", "\u200b", "\u202f", "\u0085", "\u2028",
          "\u000b", "\u000c", "\u001f", "\u180e", "\ufeff", "        ", "\t \t"]

POOLS = [ENGLISH, ENGLISH, ENGLISH, GERMAN, FRENCH_SPANISH, CHINESE, JAPANESE, KOREAN, ARABIC,
         OTHER_SCRIPTS, EMOJI, CODE, NUMBERS, CONTRACTIONS, PUNCT]


def sentence(rng, pools, n):
    words = []
    for _ in range(n):
        pool = rng.choice(pools)
        w = rng.choice(pool)
        r = rng.random()
        if r < 0.08:
            w = w.upper()
        elif r < 0.14:
            w = w.capitalize()
        words.append(w)
    out = words[0]
    for w in words[1:]:
        r = rng.random()
        if r < 0.7:
            sep = " "
        elif r < 0.85:
            sep = ""
        else:
            sep = rng.choice(SPACES)
        out += sep + w
    return out


def cases():
    rng = random.Random(20240601)
    out = [
        "", " ", "Hello world", " Hello world", "Hello world ", "hello", "HELLO", "Hello, world!",
        "I'm here, you're there, we've been, they'll go, he'd say, it's his, don't.",
        "I'M HERE, YOU'RE THERE, WE'VE BEEN, THEY'LL GO, HE'D SAY, IT'S HIS, DON'T.",
        "a  b   c    d", "trailing spaces   ", "   leading spaces", "\ttab\tseparated\t",
        "line one\nline two\n", "\n\n\n", " " * 100, "\t" * 50, "a" * 300, "ab" * 200,
        "1" * 120, "!" * 90, "-" * 80, "=" * 64 + "\n" + "=" * 64,
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
        "♪♪♪", "♪ la la la ♪", "( SPEAKING FOREIGN LANGUAGE )", "[DAVID] Hey there,", "- Hi. - Hello.",
        " '", " -", "😀😀😀", "🇺🇸🇩🇪🇯🇵", "👨‍👩‍👧‍👦 family", "你好，世界！", "こんにちは、世界。",
        "مرحبا بالعالم", "Привет, мир!", "naïve café résumé", "e\u0301", "ﬁ ligature", "Å Å",
        "x\u200by", "tab\there", "cr\rlf", "mixed English 中文 日本語 and العربية 123 😀",
    ]
    letters = "abcdefghijklmnopqrstuvwxyz"
    out += [
        "".join(rng.choice(letters) for _ in range(2000)),
        "".join(rng.choice(CHINESE) for _ in range(100)),
        " " * 1000 + "x", "x" + "\n" * 500, "\u3000" * 200 + "end",
        " ".join(rng.choice(ENGLISH) for _ in range(400)),
    ]
    out += list(SPACES) + CONTRACTIONS + [" " + c for c in CONTRACTIONS]
    out += ["word" + c for c in CONTRACTIONS] + ["WORD" + c for c in CONTRACTIONS]
    out += NUMBERS + [" " + n for n in NUMBERS] + PUNCT + [" " + p for p in PUNCT]
    out += EMOJI + [" " + e for e in EMOJI] + CODE
    all_pools = POOLS
    while len(out) < 2100:
        k = rng.random()
        if k < 0.25:
            s = sentence(rng, [ENGLISH, CONTRACTIONS, PUNCT, NUMBERS], rng.randint(1, 20))
        elif k < 0.35:
            s = sentence(rng, [GERMAN, FRENCH_SPANISH, PUNCT], rng.randint(1, 15))
        elif k < 0.45:
            s = sentence(rng, [CHINESE, JAPANESE, KOREAN, PUNCT], rng.randint(1, 12))
        elif k < 0.50:
            s = sentence(rng, [ARABIC, OTHER_SCRIPTS, NUMBERS], rng.randint(1, 10))
        elif k < 0.58:
            s = sentence(rng, [EMOJI, ENGLISH], rng.randint(1, 10))
        elif k < 0.66:
            s = sentence(rng, [CODE, NUMBERS, PUNCT], rng.randint(1, 6))
        elif k < 0.72:
            s = "".join(rng.choice(SPACES) + rng.choice(rng.choice(all_pools)) for _ in range(rng.randint(1, 8)))
        else:
            s = sentence(rng, all_pools, rng.randint(1, 25))
        r = rng.random()
        if r < 0.1:
            s = " " + s
        elif r < 0.2:
            s = s + rng.choice(SPACES)
        elif r < 0.25:
            s = rng.choice(SPACES) + s + rng.choice(SPACES)
        out.append(s)
    return out


def main():
    w = sys.stdout
    for s in cases():
        w.write(json.dumps(s, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
