//! Which hosts a connection's URL may name (see `parse::http_url`).

use url::Host;

/// `localhost`, `*.localhost` or a loopback address.
pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why the host is not a public one, for a literal address or `localhost`.
/// (A name that resolves to an internal address is refused when the worker
/// connects: `lb_crm::net`.)
pub(crate) fn internal(host: &Host<&str>) -> Option<&'static str> {
    match host {
        Host::Domain(_) if is_loopback(host) => Some("this machine (localhost)"),
        Host::Domain(_) => None,
        Host::Ipv4(ip) => lb_domain::web::internal_ip((*ip).into()),
        Host::Ipv6(ip) => lb_domain::web::internal_ip((*ip).into()),
    }
}
