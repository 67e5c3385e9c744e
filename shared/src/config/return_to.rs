//! Whether a `return_to` is one the allowlist admits, decided on parsed URLs (scheme, host,
//! port, path) the way a browser resolves them, not on text: `https://app.test/connected/../admin`
//! starts with the text `https://app.test/connected/` yet a browser goes to `/admin`.
//!
//! A `return_to` with a dot segment (`.`, `..`, also percent-encoded), an encoded slash or
//! backslash (`%2f`, `%5c`), a backslash, userinfo or anything but http(s) is refused outright
//! rather than normalised: a URL that resolves elsewhere than it reads is a mistake or an
//! attack, never a link the app meant to hand out. A fragment is allowed; the callback puts
//! the outcome's query before it (`oauth-callback`'s `location::append`).

use url::Url;

/// A URL a `return_to` or an allowlist entry may be: absolute http(s) with a host, no
/// userinfo, and nothing in its path that a browser would resolve away.
pub(crate) fn parse_strict(raw: &str) -> Option<Url> {
    if !raw.bytes().all(|b| b.is_ascii_graphic()) || raw.contains('\\') {
        return None;
    }
    if raw_path(raw)?.split('/').any(is_tricky_segment) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    let plain = matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none();
    (plain && url.host_str().is_some_and(|h| !h.is_empty())).then_some(url)
}

/// The path exactly as written: after the authority, up to the query or fragment.
fn raw_path(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    Some(rest.find('/').map_or("", |at| &rest[at..]))
}

fn is_tricky_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    let decoded = lower.replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Whether the allowlist `entry` admits `target`: the same scheme, host and port (a default
/// port written out is the same origin), and for an entry with a path (which ends in `/`)
/// a target path under it.
pub(crate) fn admits(entry: &Url, target: &Url) -> bool {
    entry.scheme() == target.scheme()
        && entry.host_str() == target.host_str()
        && entry.port_or_known_default() == target.port_or_known_default()
        && target.path().starts_with(entry.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entry: &str, target: &str) -> bool {
        let entry = parse_strict(entry).expect("a valid entry");
        parse_strict(target).is_some_and(|t| admits(&entry, &t))
    }

    #[test]
    fn a_prefix_entry_admits_only_paths_a_browser_resolves_under_it() {
        let entry = "https://app.example.com/connected/";

        for inside in [
            "https://app.example.com/connected/",
            "https://app.example.com/connected/model/1?tab=2",
            "https://APP.example.com:443/connected/x",
            "https://app.example.com/connected/x#done",
        ] {
            assert!(allowed(entry, inside), "{inside} is under {entry}");
        }
        for outside in [
            "https://app.example.com/connected/../admin",
            "https://app.example.com/connected/%2e%2e/admin",
            "https://app.example.com/connected/%2E%2e/admin",
            "https://app.example.com/connected/..%2f..%2fadmin",
            "https://app.example.com/connected/.%2e/admin",
            "https://app.example.com/connected/./x",
            "https://app.example.com/connected/x%5c..%5cadmin",
            "https://app.example.com/connected\\..\\admin",
            "https://app.example.com/connected",
            "https://app.example.com/connectedness/",
            "https://app.example.com:8443/connected/",
            "http://app.example.com/connected/",
            "https://app.example.com.evil.test/connected/",
            "https://user@app.example.com/connected/",
            "javascript://app.example.com/connected/",
        ] {
            assert!(!allowed(entry, outside), "{outside} is not under {entry}");
        }
    }

    #[test]
    fn an_origin_entry_admits_any_path_of_that_origin_and_a_fragment() {
        let entry = "https://app.example.com";

        assert!(allowed(entry, "https://app.example.com"));
        assert!(allowed(entry, "https://app.example.com#x"));
        assert!(allowed(entry, "https://app.example.com/models/1?x=1#top"));
        assert!(!allowed(entry, "https://app.example.com/a/../b"));
        assert!(!allowed(entry, "https://app.example.com@evil.test/"));
    }
}
