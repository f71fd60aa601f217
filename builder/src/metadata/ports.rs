//! EXPOSE's port specs as BuildKit reads them: `80`, `80/udp`, `8000-8010/tcp` (a range
//! becomes one entry per port), protocols tcp, udp and sctp in any case, and, for
//! compatibility with docker's parser, an `[ip:]hostPort:` prefix that is checked and
//! dropped.

use std::net::IpAddr;

/// The `port/proto` entries `spec` stands for, or why it is not a port.
pub fn parse(spec: &str) -> Result<Vec<String>, String> {
    let (ip, host, container) = split_parts(spec);
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(format!("no port in {spec:?}"));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        p => {
            return Err(format!(
                "invalid protocol {p:?} in {spec:?} (tcp, udp or sctp)"
            ));
        }
    };
    if let Some(ip) = ip {
        let bare = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        if bare.parse::<IpAddr>().is_err() {
            return Err(format!("invalid IP address {ip:?} in {spec:?}"));
        }
    }
    let (start, end) = range(port).ok_or_else(|| {
        format!("invalid port {port:?} in {spec:?} (0-65535, or a range such as 8000-8010)")
    })?;
    if let Some(host) = host {
        let (host_start, host_end) =
            range(host).ok_or_else(|| format!("invalid host port {host:?} in {spec:?}"))?;
        // A host range must match a container range; a single container port may take
        // a host range (docker allocates one port from it).
        if end - start != host_end - host_start && end != start {
            return Err(format!(
                "port range {port} and host range {host} in {spec:?} differ in size"
            ));
        }
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `[ip:][hostPort:]containerPort`; an IPv6 address keeps its colons.
fn split_parts(spec: &str) -> (Option<&str>, Option<&str>, &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [container] => (None, None, container),
        [host, container] => (None, Some(host), container),
        _ => {
            let container = parts[parts.len() - 1];
            let host = parts[parts.len() - 2];
            let ip_len = spec.len() - container.len() - host.len() - 2;
            (Some(&spec[..ip_len]), Some(host), container)
        }
    }
}

/// `80` or `8000-8010` (decimal digits only, each at most 65535, start ≤ end).
fn range(text: &str) -> Option<(u32, u32)> {
    let number = |t: &str| -> Option<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u16>().ok().map(u32::from)
    };
    match text.split_once('-') {
        None => number(text).map(|n| (n, n)),
        Some((a, b)) => {
            let (a, b) = (number(a)?, number(b)?);
            (a <= b).then_some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_normalise_as_buildkit_does() {
        let ok = |s: &str| parse(s).unwrap();
        assert_eq!(ok("80"), ["80/tcp"]);
        assert_eq!(ok("080"), ["80/tcp"]);
        assert_eq!(ok("0"), ["0/tcp"]);
        assert_eq!(ok("53/UDP"), ["53/udp"]);
        assert_eq!(ok("9/sctp"), ["9/sctp"]);
        assert_eq!(ok("8000-8002"), ["8000/tcp", "8001/tcp", "8002/tcp"]);
        assert_eq!(ok("127.0.0.1:81:80"), ["80/tcp"]);
        assert_eq!(ok("[::1]:81:80/udp"), ["80/udp"]);
        assert_eq!(ok("8080:80"), ["80/tcp"]);
        assert_eq!(ok("9000-9001:80-81"), ["80/tcp", "81/tcp"]);
        for bad in [
            "",
            "/tcp",
            "http",
            "80/icmp",
            "70000",
            "90-80",
            "+80",
            "-80",
            "80-",
            "1-2-3",
            "x:81:80",
            "9000-9002:80-81",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
