"""The capture record of a scan (``ScanRow.evidence``, credentials already masked by
:meth:`fingerprinting.capture.Evidence.public`) arranged for the match page: the redirect
chain, the addresses contacted, headers, and the hashes of the media fed to the decoder.

Long captures fetch hundreds of segments; the page lists the first :data:`MAX_ROWS` of
each kind and says how many more there are (the API's ``/v1/matches/{id}`` has them all).
"""

from __future__ import annotations

__all__ = ["MAX_ROWS", "evidence_view"]

#: Most hops, playlists and byte ranges listed on a page, each.
MAX_ROWS = 200


def _pairs(value: object) -> list[tuple[str, str]]:
    out = []
    for pair in value or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            out.append((str(pair[0]), str(pair[1])))
    return out


def evidence_view(evidence: dict | None) -> dict | None:
    """The record in page form, or ``None`` when the scan kept none."""
    if not evidence:
        return None
    hops = [
        {
            "n": n,
            "method": hop.get("method"),
            "url": hop.get("url"),
            "status": hop.get("status"),
            "redirect_to": hop.get("redirect_to"),
            "address": hop.get("address"),
            "resolved": hop.get("resolved") or [],
            "local_address": hop.get("local_address"),
            "http_version": hop.get("http_version"),
            "tls_version": hop.get("tls_version"),
            "tls_certificate_sha256": hop.get("tls_certificate_sha256"),
            "bytes": hop.get("bytes"),
            "sha256": hop.get("sha256"),
            "elapsed_seconds": hop.get("elapsed_seconds"),
            "started_utc": hop.get("started_utc"),
            "error": hop.get("error"),
            "request_headers": _pairs(hop.get("request_headers")),
            "response_headers": _pairs(hop.get("response_headers")),
        }
        for n, hop in enumerate(evidence.get("hops") or [], start=1)
        if isinstance(hop, dict)
    ]
    # The redirect chain: the first request, then each hop its redirect pointed to.
    chain = hops[:1]
    while chain and chain[-1]["redirect_to"]:
        after = hops[chain[-1]["n"] :]
        nxt = next((h for h in after if h["url"] == chain[-1]["redirect_to"]), None)
        if nxt is None:
            break
        chain.append(nxt)
    addresses = list(dict.fromkeys(h["address"] for h in hops if h["address"]))  # as contacted
    ranges = [r for r in evidence.get("ranges") or [] if isinstance(r, dict)]
    playlists = [p for p in evidence.get("playlists") or [] if isinstance(p, dict)]
    return {
        "requested_url": evidence.get("requested_url"),
        "final_url": evidence.get("final_url"),
        "started_utc": evidence.get("started_utc"),
        "finished_utc": evidence.get("finished_utc"),
        "elapsed_seconds": evidence.get("elapsed_seconds"),
        "egress_note": evidence.get("egress_note"),
        "user_agent": evidence.get("user_agent"),
        "chain": chain,
        "addresses": addresses,
        "hops": hops[:MAX_ROWS],
        "hops_more": max(0, len(hops) - MAX_ROWS),
        "ranges": ranges[:MAX_ROWS],
        "ranges_more": max(0, len(ranges) - MAX_ROWS),
        "ranges_bytes": sum(int(r.get("length") or 0) for r in ranges),
        "playlists": [
            {k: p.get(k) for k in ("url", "fetched_utc", "bytes", "sha256", "truncated")}
            for p in playlists[:MAX_ROWS]
        ],
        "playlists_more": max(0, len(playlists) - MAX_ROWS),
        "events": [e for e in evidence.get("events") or [] if isinstance(e, dict)][:MAX_ROWS],
    }
