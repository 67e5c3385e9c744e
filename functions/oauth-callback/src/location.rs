//! The callback's `Location`: the state's `return_to` with the outcome appended as
//! URL-encoded query parameters, before any fragment, joined with `?` or `&` as the URL
//! already has a query or not.

pub(crate) fn append(return_to: &str, params: &[(&str, String)]) -> String {
    let (base, fragment) = match return_to.find('#') {
        Some(at) => return_to.split_at(at),
        None => (return_to, ""),
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let joint = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{joint}{query}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::append;

    fn p(v: &str) -> Vec<(&'static str, String)> {
        vec![("connection_error", v.to_owned())]
    }

    #[test]
    fn joins_with_the_right_separator_and_keeps_the_fragment_last() {
        assert_eq!(append("https://a.test/x", &p("e")), "https://a.test/x?connection_error=e");
        assert_eq!(append("https://a.test/x?tab=1", &p("e")), "https://a.test/x?tab=1&connection_error=e");
        assert_eq!(append("https://a.test/x?", &p("e")), "https://a.test/x?connection_error=e");
        assert_eq!(append("https://a.test/x?a=1&", &p("e")), "https://a.test/x?a=1&connection_error=e");
        assert_eq!(append("https://a.test/x#top", &p("e")), "https://a.test/x?connection_error=e#top");
        // A return_to of a bare origin with a fragment: the query lands before the fragment,
        // where the app's page can read it, not inside it.
        assert_eq!(append("https://a.test#x", &p("e")), "https://a.test?connection_error=e#x");
        assert_eq!(append("https://a.test/?a=1#f?g", &p("e")), "https://a.test/?a=1&connection_error=e#f?g");
    }

    #[test]
    fn values_are_encoded() {
        assert_eq!(append("https://a.test/", &p("a b&c=d#e")), "https://a.test/?connection_error=a+b%26c%3Dd%23e");
    }
}
