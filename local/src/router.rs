//! Route selection as an API Gateway HTTP API does it, so a route that works locally works
//! deployed: `{name}` matches one segment, `{name+}` the rest of the path, the most specific
//! route wins (literal over parameter over greedy, segment by segment from the left, then a
//! named method over `ANY`), and `$default` catches whatever else.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

use crate::template::{RouteSpec, Template};

/// Every route of every function in a template.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    /// `None` for `$default`.
    segments: Option<Vec<Segment>>,
    route_key: String,
    function: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// The route a request matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// e.g. `POST /v1/tenants/{tenant}/invitations`.
    pub route_key: String,
    /// Binary name of the function behind the route.
    pub function: String,
    /// Percent-decoded values of the path parameters.
    pub path_parameters: BTreeMap<String, String>,
}

impl RouteTable {
    pub fn from_template(template: &Template) -> Self {
        let mut table = Self::default();
        for function in &template.functions {
            for route in &function.routes {
                table.add(route, &function.binary);
            }
        }
        table
    }

    pub fn add(&mut self, route: &RouteSpec, function: &str) {
        let segments = (route.path != "$default").then(|| {
            split(&route.path)
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(name) => Segment::Greedy(name.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect()
        });
        self.routes.push(Route {
            method: route.method.to_ascii_uppercase(),
            segments,
            route_key: route.route_key(),
            function: function.to_owned(),
        });
    }

    /// The most specific route for `method` and the raw (still percent-encoded) `path`.
    pub fn find(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let parts: Vec<String> = split(path)
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let mut best: Option<(Vec<u8>, &Route, BTreeMap<String, String>)> = None;
        for route in &self.routes {
            let method_score = if route.method == method {
                1
            } else if route.method == "ANY" {
                0
            } else {
                continue;
            };
            let Some(segments) = &route.segments else {
                continue;
            };
            let Some((mut score, params)) = match_segments(segments, &parts) else {
                continue;
            };
            score.push(method_score);
            if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, route, params));
            }
        }
        if let Some((_, route, path_parameters)) = best {
            return Some(RouteMatch {
                route_key: route.route_key.clone(),
                function: route.function.clone(),
                path_parameters,
            });
        }
        self.routes
            .iter()
            .find(|r| r.segments.is_none())
            .map(|route| RouteMatch {
                route_key: route.route_key.clone(),
                function: route.function.clone(),
                path_parameters: BTreeMap::new(),
            })
    }
}

/// Segments of a path: `/a/b` → `a`, `b`; `/` → one empty segment.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// A specificity score per segment (2 literal, 1 parameter, 0 greedy) and the parameters.
fn match_segments(
    segments: &[Segment],
    parts: &[String],
) -> Option<(Vec<u8>, BTreeMap<String, String>)> {
    let mut score = Vec::with_capacity(segments.len() + 1);
    let mut params = BTreeMap::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                let rest = parts.get(i..).filter(|rest| !rest.is_empty())?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.insert(name.clone(), rest);
                score.push(0);
                return Some((score, params));
            }
            Segment::Literal(literal) => {
                if parts.get(i)? != literal {
                    return None;
                }
                score.push(2);
            }
            Segment::Param(name) => {
                let value = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), value.clone());
                score.push(1);
            }
        }
    }
    (segments.len() == parts.len()).then_some((score, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str, &str)]) -> RouteTable {
        let mut t = RouteTable::default();
        for (method, path, function) in routes {
            t.add(
                &RouteSpec {
                    method: (*method).into(),
                    path: (*path).into(),
                },
                function,
            );
        }
        t
    }

    #[test]
    fn literal_beats_parameter_beats_greedy() {
        let t = table(&[
            ("GET", "/v1/users/{id}", "param"),
            ("GET", "/v1/users/me", "literal"),
            ("GET", "/v1/{proxy+}", "greedy"),
        ]);
        assert_eq!(
            t.find("GET", "/v1/users/me").map(|m| m.function).as_deref(),
            Some("literal")
        );
        let m = t.find("GET", "/v1/users/42").expect("matches");
        assert_eq!(m.function, "param");
        assert_eq!(m.route_key, "GET /v1/users/{id}");
        assert_eq!(m.path_parameters.get("id").map(String::as_str), Some("42"));
        let m = t.find("GET", "/v1/users/42/x/y").expect("matches");
        assert_eq!(m.function, "greedy");
        assert_eq!(
            m.path_parameters.get("proxy").map(String::as_str),
            Some("users/42/x/y")
        );
    }

    #[test]
    fn method_must_match_and_named_beats_any() {
        let t = table(&[
            ("POST", "/a", "post"),
            ("ANY", "/b", "any"),
            ("GET", "/b", "get"),
        ]);
        assert!(t.find("GET", "/a").is_none());
        assert_eq!(
            t.find("GET", "/b").map(|m| m.function).as_deref(),
            Some("get")
        );
        assert_eq!(
            t.find("DELETE", "/b").map(|m| m.function).as_deref(),
            Some("any")
        );
    }

    #[test]
    fn parameters_are_percent_decoded_and_non_empty() {
        let t = table(&[("GET", "/t/{tenant}/users", "f")]);
        let m = t.find("GET", "/t/a%20b%2Fc/users").expect("matches");
        assert_eq!(
            m.path_parameters.get("tenant").map(String::as_str),
            Some("a b/c")
        );
        assert!(t.find("GET", "/t//users").is_none());
        assert!(t.find("GET", "/t/x/users/").is_none());
        assert!(t.find("GET", "/t/x").is_none());
    }

    #[test]
    fn default_route_catches_the_rest() {
        let t = table(&[("ANY", "$default", "fallback"), ("GET", "/x", "x")]);
        assert_eq!(
            t.find("GET", "/x").map(|m| m.function).as_deref(),
            Some("x")
        );
        let m = t.find("PUT", "/nowhere").expect("matches");
        assert_eq!(
            (m.function.as_str(), m.route_key.as_str()),
            ("fallback", "$default")
        );
    }
}
