//! Manual pages and shell completions: `trapgate(1)` and a page per subcommand from the
//! clap definitions (`clap_mangen`), `trapgate-site.toml(5)` from the table of every
//! site-file key below (kept equal to what the reader accepts by a test), and the
//! completion scripts (`clap_complete`).

use std::io;
use std::path::{Path, PathBuf};

use roff::{Roff, bold, italic, roman};

/// One key of the site file: its table, name, default ("" for required) and meaning.
pub struct Key {
    /// `gateway`, `policy`, `ups`, `recorder`, `usm_user`, `rule`, `forward`, `notify` or
    /// `pair`.
    pub table: &'static str,
    /// The key.
    pub key: &'static str,
    /// What a file that leaves it out gets; "required" if it may not.
    pub default: &'static str,
    /// What it means.
    pub text: &'static str,
}

const fn k(
    table: &'static str,
    key: &'static str,
    default: &'static str,
    text: &'static str,
) -> Key {
    Key {
        table,
        key,
        default,
        text,
    }
}

/// Every key the site file reader takes, table by table, in the order of the page.
pub const KEYS: &[Key] = &[
    k(
        "gateway",
        "listen",
        "[\"0.0.0.0:162\"]",
        "Addresses the traps and informs of the UPSes are heard on (IPv4 or IPv6, ADDR:PORT); `run --listen` overrides them.",
    ),
    k(
        "gateway",
        "agent",
        "\"0.0.0.0:161\"",
        "Where the virtual UPS answers the recorders' polls, and where orders and polls leave from.",
    ),
    k(
        "gateway",
        "community",
        "\"public\"",
        "The gateway's community: the virtual UPS's, and each recorder's unless it names its own.",
    ),
    k(
        "gateway",
        "exec_timeout",
        "\"30s\"",
        "How long an exec recorder's command may run before its process group is killed.",
    ),
    k(
        "gateway",
        "workers",
        "0",
        "Receive workers, each with its own socket on every listen address; 0: one per CPU but one (left to the decision thread), one at least.",
    ),
    k(
        "gateway",
        "max_message_size",
        "1472",
        "The largest SNMP message the gateway sends or answers (at least 484, RFC 3417).",
    ),
    k(
        "gateway",
        "nut",
        "off",
        "The NUT server's address (NUT clients' port is 3493) for recorders of kind \"nut\".",
    ),
    k(
        "gateway",
        "nis",
        "off",
        "The apcupsd network information server's address (3551) for recorders of kind \"apcupsd\".",
    ),
    k(
        "gateway",
        "http",
        "off",
        "The HTTP endpoint's address: the status page (/), /status.json and /metrics; `run --http` overrides it. Keep it on a management network or 127.0.0.1.",
    ),
    k(
        "gateway",
        "engine_id",
        "from the host's name",
        "trapgate's own SNMPv3 engine ID, hex (0x80...): what v3 recorders and inform senders address.",
    ),
    k(
        "policy",
        "grace",
        "required",
        "Seconds on battery before each tier is shut down: { 1 = \"10m\", 2 = \"2m\" }.",
    ),
    k(
        "policy",
        "shutdown_below_charge",
        "required",
        "Every tier of a UPS is shut down when its polled charge falls below this (percent).",
    ),
    k(
        "policy",
        "shutdown_below_runtime",
        "required",
        "Likewise when its polled runtime falls below this.",
    ),
    k(
        "policy",
        "confirm_by_poll",
        "true",
        "Poll the UPS before acting on a low-battery trap.",
    ),
    k(
        "policy",
        "when_unconfirmed",
        "\"shutdown\"",
        "What an unconfirmed low-battery trap does: \"shutdown\" or \"ignore\".",
    ),
    k(
        "policy",
        "poll_timeout",
        "\"5s\"",
        "How long a confirming poll may take before the trap counts as unconfirmed.",
    ),
    k(
        "policy",
        "ack_timeout",
        "\"10s\"",
        "How long a recorder has to acknowledge before it is told again (the wait doubles each time).",
    ),
    k(
        "ups",
        "name",
        "required",
        "The UPS's name, as recorders and the journal name it.",
    ),
    k(
        "ups",
        "address",
        "required",
        "Its card's address: its traps count only from here.",
    ),
    k(
        "ups",
        "community",
        "\"public\"",
        "Its community, for its traps and the gateway's polls.",
    ),
    k("ups", "port", "161", "Its card's SNMP port, for polls."),
    k(
        "ups",
        "vendor",
        "required",
        "apc, ups-mib, eaton, mge, cyberpower, megatec, liebert, socomec or delta: its MIB.",
    ),
    k(
        "ups",
        "poll_interval",
        "\"10s\"",
        "How often the gateway polls it.",
    ),
    k(
        "ups",
        "outlet_off_delay",
        "required (apc, cyberpower: the card's)",
        "How long after its shutdown starts it cuts its outlets. Left out for an APC or CyberPower UPS, the card's shutoff delay is read at start and after each reload (until then, the slowest shutdown_time of the recorders it feeds).",
    ),
    k(
        "ups",
        "restart",
        "\"auto\"",
        "\"auto\": it switches its outlets on again when mains returns; \"manual\": someone must.",
    ),
    k(
        "ups",
        "runtime",
        "unknown",
        "Its runtime on battery at full charge, for check-config's warnings.",
    ),
    k(
        "ups",
        "version",
        "\"2c\"",
        "\"1\", \"2c\" (community) or \"3\" (SNMPv3, with user and security_level).",
    ),
    k(
        "ups",
        "user",
        "required with version 3",
        "The [[usm_user]] its v3 traps and polls use.",
    ),
    k(
        "ups",
        "security_level",
        "\"authPriv\"",
        "The least v3 level its messages must have: noAuthNoPriv, authNoPriv or authPriv.",
    ),
    k(
        "ups",
        "write_community",
        "none: trapgate never writes to the card",
        "The card's read-write community (SNMPv1), for the SETs that cycle the outlets of recorders trapgate shed. Kept out of the journal. Give the card's write access to the gateway's address only.",
    ),
    k(
        "ups",
        "write_version",
        "\"1\"",
        "The SNMP version of write_community: \"1\" (every card takes it) or \"2c\" (its refusals say more: noAccess, notWritable, wrongValue).",
    ),
    k(
        "ups",
        "write_community_file",
        "none",
        "The write community as the first line of this file.",
    ),
    k(
        "ups",
        "write_community_env",
        "none",
        "The write community from this environment variable.",
    ),
    k(
        "ups",
        "write_user",
        "none",
        "For a version 3 card: the [[usm_user]] with a write view on it (authenticated; authPriv advised), for the SETs that cycle its outlets.",
    ),
    k(
        "pdu",
        "name",
        "required",
        "The PDU's name, as recorders' outlet names it.",
    ),
    k("pdu", "address", "required", "Its card's address."),
    k("pdu", "port", "161", "Its card's SNMP port."),
    k(
        "pdu",
        "vendor",
        "required",
        "apc-rpdu (rPDUOutletControlOutletCommand), apc-rpdu2 (rPDU2OutletSwitchedControlCommand) or cyberpower-epdu (ePDUOutletControlOutletCommand).",
    ),
    k("pdu", "community", "\"public\"", "Its read community."),
    k("pdu", "version", "\"1\"", "\"1\", \"2c\" or \"3\"."),
    k(
        "pdu",
        "user",
        "required with version 3",
        "Its [[usm_user]] for reading.",
    ),
    k(
        "pdu",
        "security_level",
        "\"authPriv\"",
        "The least v3 level.",
    ),
    k(
        "pdu",
        "write_community",
        "required unless write_user",
        "Its read-write community (SNMPv1), for switching its outlets.",
    ),
    k(
        "pdu",
        "write_version",
        "\"1\"",
        "The SNMP version of write_community: \"1\" (every card takes it) or \"2c\" (its refusals say more: noAccess, notWritable, wrongValue).",
    ),
    k(
        "pdu",
        "write_community_file",
        "none",
        "The write community as the first line of this file.",
    ),
    k(
        "pdu",
        "write_community_env",
        "none",
        "The write community from this environment variable.",
    ),
    k(
        "pdu",
        "write_user",
        "none",
        "For a version 3 PDU: the [[usm_user]] with a write view on it.",
    ),
    k("recorder", "name", "required", "The recorder's name."),
    k(
        "recorder",
        "address",
        "required",
        "Its address: its acknowledgements and polls count only from here.",
    ),
    k(
        "recorder",
        "port",
        "162",
        "Where its trap receiver listens, for orders.",
    ),
    k(
        "recorder",
        "community",
        "the gateway's",
        "Its community, for orders, acknowledgements and the virtual UPS.",
    ),
    k(
        "recorder",
        "ups",
        "required",
        "The UPS that feeds it, or several: [\"ups-a\", \"ups-b\"].",
    ),
    k(
        "recorder",
        "needs",
        "1",
        "How many of its UPSes must still carry it for it to keep running.",
    ),
    k(
        "recorder",
        "tier",
        "required",
        "Its tier: the policy's grace for that tier applies.",
    ),
    k(
        "recorder",
        "shutdown_time",
        "required",
        "How long it needs to shut down cleanly.",
    ),
    k(
        "recorder",
        "boot_time",
        "\"5m\"",
        "How long it takes to be heard from again after power returns; later, it is reported NotBack.",
    ),
    k(
        "recorder",
        "kind",
        "\"trap-relay\"",
        "How it is told: \"trap-relay\" (the APC trap), \"exec\" (a command), \"nut\" (the NUT server), \"apcupsd\" (the NIS server).",
    ),
    k(
        "recorder",
        "command",
        "required for kind \"exec\"",
        "The command run to shut it down (/bin/sh -c, with TRAPGATE_RECORDER, UPSNAME, NOTIFYTYPE, ...).",
    ),
    k(
        "recorder",
        "nut_user",
        "required for kind \"nut\"",
        "The user name its NUT client logs in with.",
    ),
    k(
        "recorder",
        "nut_password",
        "required for kind \"nut\"",
        "That user's password.",
    ),
    k(
        "recorder",
        "nut_ups",
        "its UPS's name",
        "The UPS name its NUT client asks for (\"ups\" for Synology DSM).",
    ),
    k(
        "recorder",
        "version",
        "\"2c\"",
        "\"1\", \"2c\" or \"3\": how orders go to it and how it speaks to the virtual UPS.",
    ),
    k(
        "recorder",
        "user",
        "required with version 3",
        "Its [[usm_user]].",
    ),
    k(
        "recorder",
        "security_level",
        "\"authPriv\"",
        "The least v3 level of its messages.",
    ),
    k(
        "recorder",
        "outlet",
        "none: trapgate cycles nothing for it",
        "What feeds it, where trapgate may cycle it once it is down: { ups = \"NAME\", group = N } (an APC outlet group, an Eaton receptacle), { ups = \"NAME\" } (the UPS's whole output, once every recorder it alone feeds is down), { pdu = \"NAME\", outlet = N }. An outlet is cut only once every recorder on it has been ordered down and has had its shutdown_time, with a form that gives the power back by itself once mains is good.",
    ),
    k(
        "recorder",
        "wol",
        "none",
        "Its MAC (00:11:22:33:44:55): once its UPS is back on mains, trapgate sends it Wake-on-LAN magic packets until it is heard from or its boot_time passes.",
    ),
    k(
        "recorder",
        "wol_to",
        "\"255.255.255.255:9\"",
        "Where the magic packet goes (a subnet's broadcast address, or a relay).",
    ),
    k(
        "usm_user",
        "name",
        "required",
        "The user name (net-snmp's createUser vocabulary).",
    ),
    k(
        "usm_user",
        "auth_protocol",
        "none",
        "MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512.",
    ),
    k(
        "usm_user",
        "auth_passphrase",
        "none",
        "Its authentication passphrase, at least 8 characters; or auth_passphrase_file (its first line) or auth_passphrase_env (a variable's name).",
    ),
    k(
        "usm_user",
        "auth_passphrase_file",
        "none",
        "A file whose first line is the passphrase.",
    ),
    k(
        "usm_user",
        "auth_passphrase_env",
        "none",
        "An environment variable holding the passphrase.",
    ),
    k(
        "usm_user",
        "priv_protocol",
        "none",
        "DES, AES, AES-192 or AES-256.",
    ),
    k(
        "usm_user",
        "priv_passphrase",
        "none",
        "Its privacy passphrase; or priv_passphrase_file, priv_passphrase_env.",
    ),
    k(
        "usm_user",
        "priv_passphrase_file",
        "none",
        "A file whose first line is the privacy passphrase.",
    ),
    k(
        "usm_user",
        "priv_passphrase_env",
        "none",
        "An environment variable holding it.",
    ),
    k(
        "usm_user",
        "engine_id",
        "any engine",
        "This user only for that engine (hex).",
    ),
    k(
        "rule",
        "oid",
        "required",
        "A trap OID of the site's own (overrides a built-in rule of that OID).",
    ),
    k(
        "rule",
        "event",
        "required",
        "What it means: OnBattery, LowBattery, PowerRestored, ... (trapgate's event names).",
    ),
    k(
        "rule",
        "name",
        "required",
        "Its name, as events and the journal show it.",
    ),
    k(
        "rule",
        "mib",
        "\"site\"",
        "The MIB it comes from, as events show it.",
    ),
    k(
        "rule",
        "prefix",
        "false",
        "Whether it also matches every OID below.",
    ),
    k(
        "forward",
        "to",
        "required",
        "The network management system's trap receiver: host:port, IPv4, [IPv6]:port or a name (resolved when trapgate reads the site file).",
    ),
    k(
        "forward",
        "match",
        "[\"default\"]",
        "The notifications it takes, in snmptrapd's forms: \"OID\" (exactly), \"OID*\" (the subtree, itself included), \"OID.*\" (strictly below), \"*\" (all), \"default\" (those no OID form of any [[forward]] took).",
    ),
    k(
        "forward",
        "version",
        "\"as-received\"",
        "\"as-received\" (v1 as v1, v2c as v2c, SNMPv3 as v2c) or \"2c\" (v1 traps converted as RFC 3584 §3.1 says).",
    ),
    k(
        "forward",
        "community",
        "\"public\"",
        "The community of what is forwarded to it.",
    ),
    k(
        "forward",
        "sources",
        "\"site\"",
        "\"site\": the notifications of the site's UPSes, with their community or user; \"any\": anyone's (never believed for a decision; an inform taken is answered, as snmptrapd with disableAuthorization).",
    ),
    k(
        "forward",
        "source",
        "the gateway's listen address, where it listens on a single one; else the host's choice",
        "The address forwards to this target leave from, as snmptrapd's clientaddr: an address of this host, of the target's family (an NMS that filters by source sees the one configured).",
    ),
    k(
        "notify",
        "kind",
        "required",
        "What is told: \"syslog\" (RFC 5424), \"webhook\" (an HTTP POST of each record as JSON), \"milestone\" (Milestone XProtect's generic events: a line on TCP to its event server), \"mqtt\" (an MQTT 3.1.1 or 5 broker).",
    ),
    k(
        "notify",
        "to",
        "required (syslog, milestone, mqtt)",
        "host:port of the syslog server, of XProtect's event server (port 1234, or the generic-event data source's own), or of the MQTT broker (1883).",
    ),
    k(
        "notify",
        "url",
        "required (webhook)",
        "The webhook's http:// or https:// URL.",
    ),
    k(
        "notify",
        "transport",
        "\"udp\"",
        "syslog: \"udp\" (RFC 5426), \"tcp\" (RFC 6587, octet counting) or \"tls\" (RFC 5425).",
    ),
    k(
        "notify",
        "facility",
        "\"daemon\"",
        "syslog: the facility (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0 to local7).",
    ),
    k(
        "notify",
        "enterprise",
        "32473",
        "syslog: the structured data's SD-ID is trapgate@N (32473: RFC 5612's documentation number; a site may set its own).",
    ),
    k(
        "notify",
        "protocol",
        "\"3.1.1\"",
        "mqtt: the protocol version, \"3.1.1\" or \"5\".",
    ),
    k(
        "notify",
        "tls",
        "false",
        "mqtt: TLS to the broker (reached by the host of `to` as written, which its certificate must carry).",
    ),
    k(
        "notify",
        "ca_file",
        "\"/etc/ssl/certs/ca-certificates.crt\"",
        "syslog or mqtt over TLS, an https webhook: the PEM file of the certificate authorities the server's certificate must chain to (a webhook's default: Mozilla's roots).",
    ),
    k(
        "notify",
        "server_name",
        "the host of `to`",
        "syslog over TLS: the name (or address) the server's certificate must carry.",
    ),
    k(
        "notify",
        "match",
        "[\"decisions\", \"alerts\", \"failures\"]",
        "What it is told: decisions, alerts, actions, failures, all, or record kinds by name (ShutdownRecorder, Sent, Back, NotBack, …).",
    ),
    k(
        "notify",
        "severity",
        "\"debug\"",
        "Nothing less severe than this: emerg, alert, crit, err, warning, notice, info, debug (an order is a notice, a shutdown decided a warning, a recorder that did not shut down an alert).",
    ),
    k(
        "notify",
        "header",
        "\"Authorization\" (with \"Bearer TOKEN\")",
        "webhook: the header the token goes in (as it is, in a header of another name).",
    ),
    k(
        "notify",
        "token",
        "none",
        "webhook: the token, inline; or token_file (its first line), or token_env.",
    ),
    k(
        "notify",
        "token_file",
        "none",
        "webhook: a file whose first line is the token.",
    ),
    k(
        "notify",
        "token_env",
        "none",
        "webhook: an environment variable holding the token.",
    ),
    k(
        "notify",
        "prefix",
        "\"trapgate\"",
        "mqtt: the topics' prefix: PREFIX/event (a message per record), PREFIX/ups/NAME and PREFIX/recorder/NAME (retained state), PREFIX/status (online; the last will says offline).",
    ),
    k(
        "notify",
        "client_id",
        "\"trapgate-HOSTNAME\"",
        "mqtt: the client identifier.",
    ),
    k("notify", "user", "none", "mqtt: the broker's user."),
    k(
        "notify",
        "password",
        "none",
        "mqtt: the user's password, inline; or password_file (its first line), or password_env.",
    ),
    k(
        "notify",
        "password_file",
        "none",
        "mqtt: a file whose first line is the password.",
    ),
    k(
        "notify",
        "password_env",
        "none",
        "mqtt: an environment variable holding the password.",
    ),
    k(
        "notify",
        "discovery",
        "false",
        "mqtt: Home Assistant's MQTT discovery (homeassistant/…/config, retained): each UPS (on battery, charge) and recorder (its shutdown state) a device.",
    ),
    k(
        "notify",
        "keep_alive",
        "\"30s\"",
        "mqtt: the keep-alive (5 s to 65535 s): a broker that has not heard the gateway for one and a half of it publishes the last will.",
    ),
    k(
        "pair",
        "self",
        "required",
        "One gateway's pair endpoint, ADDR:PORT (UDP). Both gateways run the same file: each takes as its own whichever of self and peer is an address of its host.",
    ),
    k(
        "pair",
        "peer",
        "required",
        "The other gateway's pair endpoint, ADDR:PORT (UDP): the only source its records are believed from.",
    ),
    k(
        "pair",
        "address",
        "required",
        "The address keepalived moves between the two: the recorders' \"UPS IP\". The gateway that holds it acts (answers the recorders there, orders them from there, commands the outlets); the other decides, journals and sends nothing. The virtual UPS, NUT and NIS servers listen on it.",
    ),
    k(
        "pair",
        "key_file",
        "required",
        "A file whose first line (16 bytes at least) is the secret both gateways share: every datagram of the pair channel carries its HMAC-SHA256.",
    ),
];

/// The tables, in the order of the page, with how they are written.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "gateway",
        "[gateway]",
        "Where the gateway listens and what it is (optional).",
    ),
    ("policy", "[policy]", "When recorders are shut down."),
    ("ups", "[[ups]]", "One per UPS."),
    (
        "pdu",
        "[[pdu]]",
        "Switched rack PDUs whose outlets feed recorders (optional).",
    ),
    ("recorder", "[[recorder]]", "One per recorder."),
    ("usm_user", "[[usm_user]]", "SNMPv3 users (optional)."),
    (
        "rule",
        "[[rule]]",
        "Trap rules of the site's own (optional).",
    ),
    (
        "forward",
        "[[forward]]",
        "Where the notifications heard are forwarded, as snmptrapd's forward with addForwarderInfo (optional): the sender kept in snmpTrapAddress.x (IPv4) or 1.3.6.1.4.1.8072.9999.9999.162.1.x (IPv6), informs forwarded as informs.",
    ),
    (
        "notify",
        "[[notify]]",
        "The site's other systems, told of every decision as it is made (optional): a syslog server, a webhook, Milestone XProtect's event server; each on a queue and a thread of its own.",
    ),
    (
        "pair",
        "[pair]",
        "Two gateways, one site, behind keepalived's address (optional): both hear every UPS and decide; the one that holds the address acts and ships what it did to the other.",
    ),
];

/// `trapgate-site.toml(5)`.
pub fn site_page() -> String {
    let mut r = Roff::new();
    r.control(
        "TH",
        [
            "TRAPGATE-SITE.TOML",
            "5",
            "",
            env!("CARGO_PKG_VERSION"),
            "trapgate",
        ],
    );
    r.control("SH", ["NAME"]);
    r.text([roman(
        "trapgate-site.toml - the site file of trapgate(1): site.toml",
    )]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "A TOML file: the gateway, the shutdown policy, every UPS and every recorder of a site. \
         `trapgate check-config FILE` checks it and names every mistake with its line and column; \
         `trapgate run --config FILE` runs it; SIGHUP reloads it. Durations are seconds or \
         strings such as \"90s\", \"2m\", \"1h\".",
    )]);
    for (table, head, about) in TABLES {
        r.control("SH", [*head]);
        r.text([roman(*about)]);
        for key in KEYS.iter().filter(|k| k.table == *table) {
            r.control("TP", []);
            r.text([
                bold(key.key),
                roman(" (default: "),
                italic(key.default),
                roman(")"),
            ]);
            r.text([roman(key.text)]);
        }
    }
    r.control("SH", ["FILES"]);
    r.text([roman(
        "/etc/trapgate/site.toml (the Debian package's), /var/lib/trapgate/journal (its journal).",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "trapgate(1), snmptrapd.conf(5), upsmon.conf(5), apcupsd.conf(5)",
    )]);
    r.render()
}

/// What `trapgate(1)` says beyond clap's sections: how it ends, its files, examples.
const EXIT_STATUS: &str = "0: done (run: stopped by SIGINT or SIGTERM). 1: check-config found \
     mistakes; replay --expect found differences. 2: an error, said on stderr in one line \
     (a file that is not a capture, a site file that cannot be read, a port that cannot be \
     bound, run without --config).";

const FILES: &[(&str, &str)] = &[
    (
        "/etc/trapgate/site.toml",
        "The site file (trapgate-site.toml(5)) as the Debian package installs it: a template \
         that check-config and run refuse until it lists the site's own UPSes and recorders.",
    ),
    (
        "/var/lib/trapgate/journal",
        "The journal the packaged unit keeps (run --journal): one checksummed JSON line per \
         input, decision and action; rotated to journal.1 ... journal.4. Read it with \
         `trapgate journal`.",
    ),
    (
        "/var/lib/trapgate/journal.engine-boots",
        "trapgate's SNMPv3 engine's boots, kept beside the journal.",
    ),
    (
        "/usr/lib/systemd/system/trapgate.service",
        "The unit (Type=notify, watchdog, sandboxed); not enabled at install.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GLIBC_TUNABLES",
        "Unset, `run` starts again at once as the same process (its pid, arguments and name) with \
     GLIBC_TUNABLES=glibc.malloc.hugetlb=1 when the kernel gives transparent huge pages only to \
     memory that asks (/sys/kernel/mm/transparent_hugepage/enabled says madvise): glibc's \
     malloc then asks, and a fan-out after hours of quiet does not walk the page tables for \
     every recorder. Set (to glibc.malloc.hugetlb=0, or to anything), it is kept as it is.",
    ),
    (
        "TRAPGATE_STARTED_AGAIN",
        "Set by run in the environment it starts again with; while it is set, run does not start \
         again (glibc may erase the tunables of a binary given file capabilities). The commands \
         of exec recorders inherit neither it nor the tunables it came with.",
    ),
];

const EXAMPLES: &[(&str, &str)] = &[
    (
        "trapgate check-config /etc/trapgate/site.toml",
        "Check a site file: every mistake with its line and column, or a one-line summary \
         and its warnings.",
    ),
    (
        "trapgate run --config site.toml --journal /var/lib/trapgate/journal --http 127.0.0.1:9162",
        "Run the gateway: decisions on stdout as JSON lines, the status page, /status.json \
         and /metrics on the HTTP endpoint.",
    ),
    (
        "trapgate status --http 127.0.0.1:9162",
        "The running gateway's UPSes, outages and recorders as tables.",
    ),
    (
        "trapgate replay outage.pcapng --config site.toml",
        "What the gateway would have decided and sent for a captured outage.",
    ),
    (
        "trapgate replay captures/seed-trace.pcap --expect captures/seed-trace.decisions.jsonl",
        "Compare a replay with a golden log; exit 1 and the differences if they differ.",
    ),
    (
        "trapgate decode --json site.pcap",
        "Every SNMP message of a capture, as Wireshark lists them, as JSON lines.",
    ),
    (
        "trapgate journal /var/lib/trapgate/journal --only nvr-244",
        "What the journal holds of one recorder, readably.",
    ),
    (
        "systemctl enable --now trapgate; systemctl reload trapgate",
        "Start the packaged gateway once its site file is written; reread the site (SIGHUP).",
    ),
];

/// `trapgate(1)`: clap's name, synopsis, description, options and subcommands, then
/// exit status, files, examples and see also.
pub fn main_page(cmd: clap::Command) -> io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    r.text([roman(EXIT_STATUS)]);
    r.control("SH", ["FILES"]);
    for (file, what) in FILES {
        r.control("TP", []);
        r.text([bold(*file)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        r.control("TP", []);
        r.text([bold(*name)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["EXAMPLES"]);
    for (command, what) in EXAMPLES {
        r.control("TP", []);
        r.text([bold(*command)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "trapgate-run(1), trapgate-replay(1), trapgate-check-config(1), trapgate-site.toml(5), \
         snmptrapd(8), snmpd(8), upsmon(8), apcupsd(8)",
    )]);
    out.extend_from_slice(r.render().as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// Writes `trapgate.1`, a page per subcommand (`trapgate-run.1`, ...) and
/// `trapgate-site.toml.5` into `dir`; returns the files written.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd.clone(), dir)?;
    std::fs::write(dir.join("trapgate.1"), main_page(cmd)?)?;
    let site = dir.join("trapgate-site.toml.5");
    std::fs::write(&site, site_page())?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("trapgate") && (n.ends_with(".1") || n.ends_with(".5"))
            })
        })
        .collect();
    written.sort();
    Ok(written)
}

/// The completion script for `shell`, for `cmd`.
pub fn completions(cmd: &mut clap::Command, shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "trapgate", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Site;

    /// The keys the reader names when a table has one it does not know.
    fn accepted(table_head: &str) -> Vec<String> {
        let text = format!("{table_head}\nzzz_unknown = 1\n");
        let errors = Site::parse(&text).expect_err("an unknown key");
        let said = errors
            .iter()
            .map(|e| e.message.clone())
            .find(|m| m.contains("zzz_unknown"))
            .unwrap_or_else(|| panic!("{table_head}: {errors:?}"));
        let keys: Vec<String> = said
            .split("expected one of: ")
            .nth(1)
            .expect("the list")
            .trim_end_matches(')')
            .split(", ")
            .map(str::to_string)
            .collect();
        assert!(keys.len() >= 4, "{table_head}: {keys:?}");
        keys
    }

    #[test]
    fn the_site_page_lists_every_key_the_reader_takes() {
        for (table, head, _) in TABLES {
            let ours: Vec<&str> = KEYS
                .iter()
                .filter(|k| k.table == *table)
                .map(|k| k.key)
                .collect();
            for key in accepted(head) {
                assert!(
                    ours.contains(&key.as_str()),
                    "{head} {key} is not on the page"
                );
            }
        }
        // And the top level's tables are all there.
        let top = accepted("");
        let heads: Vec<&str> = TABLES.iter().map(|(t, _, _)| *t).collect();
        for t in top {
            assert!(heads.contains(&t.as_str()), "table {t} is not on the page");
        }
        let page = site_page();
        assert!(page.contains("shutdown_below_charge"), "{page}");
        assert!(page.contains(".TH TRAPGATE-SITE.TOML 5"), "{page}");
    }
}
