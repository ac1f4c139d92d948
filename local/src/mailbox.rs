//! The mail moto "sent": read from moto's `/moto-api/data.json`, for the developer mailbox
//! page and for tests that follow the links in invitation mails. Local-only tooling.
//!
//! moto keeps one body per message (the HTML part when there is one, else the text part),
//! so the text of an HTML mail is derived from its HTML here, hrefs included.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message accepted by SES (moto), as the tests and the mailbox page see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    /// Every recipient: To, then Cc and Bcc.
    pub to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub text: String,
    /// Empty for text-only mail.
    pub html: String,
}

impl SentMail {
    /// Whether `address` is among the recipients (case-insensitive).
    pub fn is_for(&self, address: &str) -> bool {
        self.to.iter().any(|to| to.eq_ignore_ascii_case(address))
    }

    /// Every `http(s)://` link of the text part, in order.
    pub fn links(&self) -> Vec<String> {
        split_links(&self.text)
            .into_iter()
            .filter(|(_, is_link)| *is_link)
            .map(|(chunk, _)| chunk.to_owned())
            .collect()
    }
}

/// All mail moto has accepted, oldest first.
pub async fn fetch(http: &reqwest::Client, moto_url: &str) -> Result<Vec<SentMail>> {
    Ok(parse(&crate::emulators::moto_data(http, moto_url).await?))
}

/// The SES messages of a moto `data.json` document.
pub fn parse(data: &Value) -> Vec<SentMail> {
    let messages = data
        .pointer("/ses/Message")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    messages.iter().map(parse_message).collect()
}

fn parse_message(message: &Value) -> SentMail {
    let text_of = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut to = Vec::new();
    for field in ["ToAddresses", "CcAddresses", "BccAddresses"] {
        if let Some(list) = message
            .get("destinations")
            .and_then(|d| d.get(field))
            .and_then(Value::as_array)
        {
            to.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    let (text, html) = match message.get("body") {
        Some(Value::Object(parts)) => {
            let html = text_of(parts.get("html").or_else(|| parts.get("Html")));
            let text = text_of(parts.get("text").or_else(|| parts.get("Text")));
            let text = if text.is_empty() {
                html_to_text(&html)
            } else {
                text
            };
            (text, html)
        }
        Some(Value::String(body)) if looks_like_html(body) => (html_to_text(body), body.clone()),
        Some(Value::String(body)) => (body.clone(), String::new()),
        _ => (String::new(), String::new()),
    };
    SentMail {
        to,
        from: text_of(message.get("source")),
        subject: text_of(message.get("subject")),
        text,
        html,
    }
}

fn looks_like_html(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    ["<html", "<body", "<p", "<a ", "<br", "<div", "<table", "</"]
        .iter()
        .any(|tag| lower.contains(tag))
}

/// Readable text of an HTML mail: tags dropped, block ends as line breaks, entities decoded,
/// and each link's href after its label (space-separated) unless the label is the href.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut pending_href: Option<String> = None;
    let mut label_start = 0;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match name.as_str() {
            "style" | "script" | "head" | "title" if !closing => {
                let end = format!("</{name}");
                match rest.to_ascii_lowercase().find(&end) {
                    Some(at) => rest = &rest[at..],
                    None => rest = "",
                }
            }
            "a" if !closing => {
                pending_href = attribute(tag, "href").map(|h| decode_entities(&h));
                label_start = out.len();
            }
            "a" => {
                if let Some(href) = pending_href.take() {
                    // Space-separated, so link scanners that stop at whitespace find it whole.
                    if out[label_start..].trim() != href && !href.starts_with("mailto:") {
                        out.push_str(&format!(" {href} "));
                    }
                }
            }
            "br" => out.push('\n'),
            "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table"
                if closing =>
            {
                out.push('\n')
            }
            _ => {}
        }
    }
    out.push_str(&decode_entities(rest));
    // Tidy: trim each line, collapse runs of spaces and of blank lines.
    let mut tidy = String::new();
    let mut blank = true;
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            if !blank {
                tidy.push('\n');
            }
            blank = true;
        } else {
            tidy.push_str(&line);
            tidy.push('\n');
            blank = false;
        }
    }
    tidy.trim_end().to_owned()
}

/// The value of `name="..."` (or single-quoted) inside a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find(name) {
        let start = from + at;
        from = start + name.len();
        let preceded = start == 0 || lower.as_bytes()[start - 1].is_ascii_whitespace();
        let after = tag[from..].trim_start();
        if !preceded || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let quote = value.chars().next()?;
        return if quote == '"' || quote == '\'' {
            value[1..].split(quote).next().map(str::to_owned)
        } else {
            value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .map(str::to_owned)
        };
    }
    None
}

fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text cut into plain chunks and `http(s)://` links (trailing punctuation left out).
fn split_links(text: &str) -> Vec<(&str, bool)> {
    let mut chunks = Vec::new();
    let mut rest = text;
    loop {
        let start = match (rest.find("http://"), rest.find("https://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        let tail = &rest[start..];
        let mut end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')'))
            .unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', '!', '?']) {
            end -= 1;
        }
        if start > 0 {
            chunks.push((&rest[..start], false));
        }
        chunks.push((&tail[..end], true));
        rest = &tail[end..];
    }
    if !rest.is_empty() {
        chunks.push((rest, false));
    }
    chunks
}

/// Escaped text with its links made clickable.
fn linkify(text: &str) -> String {
    split_links(text)
        .into_iter()
        .map(|(chunk, is_link)| {
            let chunk = escape(chunk);
            if is_link {
                format!(r#"<a href="{chunk}" target="_blank" rel="noopener">{chunk}</a>"#)
            } else {
                chunk
            }
        })
        .collect()
}

/// The mailbox page: newest mail first, links clickable, HTML parts in sandboxed frames.
pub fn render_page(mails: &[SentMail], moto_url: &str) -> String {
    let mut items = String::new();
    for mail in mails.iter().rev() {
        let html_part = if mail.html.is_empty() {
            String::new()
        } else {
            format!(
                r#"<details><summary>HTML version</summary><iframe sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc="{}"></iframe></details>"#,
                escape(&mail.html.replace("<a ", r#"<a target="_blank" "#))
            )
        };
        items.push_str(&format!(
            "<article><h2>{subject}</h2><p class=meta>From {from} to {to}</p><pre>{text}</pre>{html_part}</article>\n",
            subject = escape(&mail.subject),
            from = escape(&mail.from),
            to = escape(&mail.to.join(", ")),
            text = linkify(&mail.text),
        ));
    }
    if items.is_empty() {
        items.push_str("<p>No mail yet.</p>");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Latchkey local mailbox</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
article {{ border: 1px solid #ccc; border-radius: 6px; padding: 0 1rem 1rem; margin-bottom: 1rem; }}
.meta {{ color: #666; }}
pre {{ white-space: pre-wrap; font-family: inherit; }}
iframe {{ width: 100%; height: 24rem; border: 1px solid #ddd; }}
</style></head>
<body><h1>Local mailbox</h1>
<p class=meta>{count} message(s), newest first, as accepted by SES in moto (<a href="{data}">data.json</a>). Reload to refresh.</p>
{items}</body></html>
"#,
        count = mails.len(),
        data = escape(&format!(
            "{}/moto-api/data.json",
            moto_url.trim_end_matches('/')
        )),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_moto_messages() {
        let data = json!({"ses": {"Message": [
            {"destinations": {"ToAddresses": ["a@x.test"], "CcAddresses": ["c@x.test"]}, "source": "s@x.test", "subject": "Hi",
             "body": "<p>Join <a href=\"http://127.0.0.1:9000/accept-invite?token=a&amp;b=1\">here</a></p>"},
            {"destinations": {"ToAddresses": ["b@x.test"]}, "source": "s@x.test", "subject": "Plain", "body": "see http://x.test/a."},
            {"destinations": {"ToAddresses": ["d@x.test"]}, "source": "s@x.test", "subject": "Both", "body": {"text": "t", "html": "<p>h</p>"}}
        ]}});
        let mails = parse(&data);
        assert_eq!(mails.len(), 3);
        assert!(mails[0].is_for("A@x.test") && mails[0].is_for("c@x.test"));
        assert_eq!(
            mails[0].text,
            "Join here http://127.0.0.1:9000/accept-invite?token=a&b=1"
        );
        assert_eq!(
            mails[0].links(),
            ["http://127.0.0.1:9000/accept-invite?token=a&b=1"]
        );
        assert_eq!(
            (mails[1].text.as_str(), mails[1].html.as_str()),
            ("see http://x.test/a.", "")
        );
        assert_eq!(mails[1].links(), ["http://x.test/a"]);
        assert_eq!(
            (mails[2].text.as_str(), mails[2].html.as_str()),
            ("t", "<p>h</p>")
        );
        assert!(parse(&json!({})).is_empty());
    }

    #[test]
    fn html_to_text_keeps_structure_and_drops_styles() {
        let html = "<html><head><style>p{color:red}</style></head><body><h1>Title</h1><p>a &lt; b&nbsp;&#169;</p><br><a href='https://x.test/'>https://x.test/</a></body></html>";
        assert_eq!(html_to_text(html), "Title\na < b ©\n\nhttps://x.test/");
    }

    #[test]
    fn page_escapes_and_links() {
        let mail = SentMail {
            to: vec!["a@x.test".into()],
            from: "s@x.test".into(),
            subject: "<script>".into(),
            text: "go to https://x.test/?a=1&b=2 now".into(),
            html: String::new(),
        };
        let page = render_page(&[mail], "http://127.0.0.1:5000");
        assert!(page.contains("&lt;script&gt;"));
        assert!(
            page.contains(
                r#"<a href="https://x.test/?a=1&amp;b=2" target="_blank" rel="noopener">"#
            )
        );
    }
}
