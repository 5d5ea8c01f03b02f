//! HTML to plain text, for rules that match on words in HTML-only mail.
//!
//! This is not a renderer: it drops `script`, `style` and `title` contents, comments and tags,
//! decodes the common entities, collapses whitespace as a browser would and keeps the line
//! breaks that paragraphs, `br` and block elements imply. One pass, linear in the input, so it
//! is safe on hostile HTML.

/// Elements whose contents are never shown as text.
const HIDDEN: &[&str] = &["script", "style", "title"];

/// Elements that start a new paragraph: a blank line before and after.
const PARAGRAPH: &[&str] = &["p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "ul", "ol", "pre", "hr"];

/// Elements that start a new line.
const LINE: &[&str] = &["br", "div", "tr", "li", "dt", "dd", "section", "article", "header", "footer", "address"];

/// The text of an HTML document or fragment.
pub fn html_to_text(html: &str) -> String {
    let mut out = Out::default();
    let mut rest = html;
    while let Some(pos) = rest.find(['<', '&']) {
        out.text(&rest[..pos]);
        rest = &rest[pos..];
        rest = if rest.starts_with('<') { tag(rest, &mut out) } else { entity(rest, &mut out) };
    }
    out.text(rest);
    out.finish()
}

/// Consumes the markup at the start of `rest` (which starts with `<`) and returns what follows.
fn tag<'a>(rest: &'a str, out: &mut Out) -> &'a str {
    if let Some(comment) = rest.strip_prefix("<!--") {
        return comment.find("-->").map_or("", |end| &comment[end + 3..]);
    }
    let name_start = usize::from(rest[1..].starts_with('/')) + 1;
    let name: String = rest[name_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .take(16)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if name.is_empty() && !rest[1..].starts_with(['!', '?', '/']) {
        // A lone `<`, as in `a < b`: text, not markup.
        out.text("<");
        return &rest[1..];
    }
    let after = tag_end(rest).map_or("", |end| &rest[end..]);
    let closing = name_start == 2;
    if !closing && HIDDEN.contains(&name.as_str()) {
        return skip_element(after, &name);
    }
    if PARAGRAPH.contains(&name.as_str()) {
        out.newlines(2);
    } else if LINE.contains(&name.as_str()) {
        out.newlines(1);
    } else if name == "td" || name == "th" {
        out.space();
    }
    after
}

/// The byte index just past the `>` that ends the tag at the start of `s`; quotes may hide `>`.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Skips to just past `</name ...>`; an unclosed hidden element hides the rest, as in a browser.
fn skip_element<'a>(s: &'a str, name: &str) -> &'a str {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(pos) = s[from..].find("</") {
        let start = from + pos + 2;
        let end = start + name.len();
        if bytes.get(start..end).is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes())) {
            return tag_end(&s[from + pos..]).map_or("", |e| &s[from + pos + e..]);
        }
        from = start;
    }
    ""
}

/// Decodes the entity at the start of `rest` (which starts with `&`) and returns what follows.
fn entity<'a>(rest: &'a str, out: &mut Out) -> &'a str {
    let body = &rest[1..];
    let end = body.bytes().take(12).position(|b| b == b';');
    let decoded = end.and_then(|end| {
        let name = &body[..end];
        let ch = match name.strip_prefix('#') {
            Some(num) => numeric(num),
            None => named(name),
        };
        ch.map(|c| (c, end + 2))
    });
    match decoded {
        Some((c, len)) => {
            if c.is_whitespace() {
                out.text(" ");
            } else if c != DROP {
                out.char(c);
            }
            &rest[len..]
        }
        None => {
            out.text("&");
            body
        }
    }
}

/// Entities decoded to nothing: soft hyphens and zero-width joiners only matter to layout.
const DROP: char = '\u{ad}';

/// `#65` or `#x41` without the `#`.
fn numeric(num: &str) -> Option<char> {
    let code = match num.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => num.parse().ok()?,
    };
    Some(char::from_u32(code).filter(|c| *c != '\0').unwrap_or('\u{fffd}'))
}

/// The named entities mail actually uses; others stay as written.
fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" => DROP,
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "sect" => '§',
        "deg" => '°',
        "times" => '×',
        _ => return latin1_letter(name),
    })
}

/// Accented Latin-1 letters (`&eacute;`, `&Uuml;`), common in European newsletters.
fn latin1_letter(name: &str) -> Option<char> {
    const BASES: &[(&str, &str, &str)] = &[
        ("grave", "AEIOUaeiou", "ÀÈÌÒÙàèìòù"),
        ("acute", "AEIOUYaeiouy", "ÁÉÍÓÚÝáéíóúý"),
        ("circ", "AEIOUaeiou", "ÂÊÎÔÛâêîôû"),
        ("uml", "AEIOUaeiouy", "ÄËÏÖÜäëïöüÿ"),
        ("tilde", "ANOano", "ÃÑÕãñõ"),
        ("cedil", "Cc", "Çç"),
        ("ring", "Aa", "Åå"),
        ("slash", "Oo", "Øø"),
    ];
    match name {
        "szlig" => return Some('ß'),
        "AElig" => return Some('Æ'),
        "aelig" => return Some('æ'),
        _ => {}
    }
    let mut chars = name.chars();
    let letter = chars.next()?;
    let suffix = chars.as_str();
    let (_, from, to) = BASES.iter().find(|(s, _, _)| *s == suffix)?;
    from.chars().position(|c| c == letter).and_then(|i| to.chars().nth(i))
}

/// The text being built: whitespace is collapsed as it arrives, breaks are merged.
#[derive(Default)]
struct Out {
    text: String,
    /// A space is owed before the next visible character.
    space: bool,
    /// Line breaks owed before the next visible character.
    breaks: usize,
}

impl Out {
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_whitespace() {
                self.space = true;
            } else {
                self.char(c);
            }
        }
    }

    fn char(&mut self, c: char) {
        if self.breaks > 0 && !self.text.is_empty() {
            self.text.extend(std::iter::repeat_n('\n', self.breaks));
        } else if self.space && self.breaks == 0 && !self.text.is_empty() {
            self.text.push(' ');
        }
        self.breaks = 0;
        self.space = false;
        self.text.push(c);
    }

    fn space(&mut self) {
        self.space = true;
    }

    fn newlines(&mut self, n: usize) {
        self.breaks = self.breaks.max(n);
    }

    fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn drops_tags_script_style_and_comments() {
        let html = "<html><head><title>T</title><style>p { color: red }</style>\
                    <script>var a = '<p>';</script></head>\
                    <body><!-- hidden --><b>Hello</b>,   <i>world</i>!</body></html>";
        assert_eq!(html_to_text(html), "Hello, world!");
    }

    #[test]
    fn keeps_paragraph_and_line_breaks() {
        let html = "<p>One\n two</p><p>Three<br>Four<BR/>Five</p><div>Six</div><ul><li>a</li><li>b</li></ul>";
        assert_eq!(html_to_text(html), "One two\n\nThree\nFour\nFive\n\nSix\n\na\nb");
    }

    #[test]
    fn decodes_entities() {
        let html = "Tom &amp; Jerry &lt;3 &quot;x&quot; &#65;&#x42;&#X43; caf&eacute; a&nbsp;b 5 &euro; &bogus; & so";
        assert_eq!(html_to_text(html), "Tom & Jerry <3 \"x\" ABC café a b 5 € &bogus; & so");
    }

    #[test]
    fn survives_broken_markup() {
        assert_eq!(html_to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(html_to_text("text <b unclosed"), "text");
        assert_eq!(html_to_text("x<script>never closed"), "x");
        assert_eq!(html_to_text("<a href=\"x>y\">link</a>"), "link");
        assert_eq!(html_to_text("&#xFFFFFFFF;&#0;"), "\u{fffd}\u{fffd}");
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<td>a</td><td>b</td>"), "a b");
    }
}
