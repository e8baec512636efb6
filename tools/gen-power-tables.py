#!/usr/bin/env python3
"""Regenerates src/engine/power/tables.rs from the MIB files themselves.

The objects that command a UPS's output, its outlet groups and switched PDU outlets,
that read their pending state back, and the card settings worth checking, each read
from its MIB file: its OID (resolved through the MIB's own OBJECT IDENTIFIER and
OBJECT-TYPE definitions), its access, and its named values. The MIB files lie beside the
repository in the developers' workspace (../shared/mibs/src); the generated table is
committed. Run from the repository root:

    python3 tools/gen-power-tables.py > src/engine/power/tables.rs && cargo fmt
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "mibs" / "src"
if not SRC.exists():
    SRC = pathlib.Path("../shared/mibs/src")

ROOTS = {
    "iso": [1],
    "org": [1, 3],
    "dod": [1, 3, 6],
    "internet": [1, 3, 6, 1],
    "mgmt": [1, 3, 6, 1, 2],
    "mib-2": [1, 3, 6, 1, 2, 1],
    "private": [1, 3, 6, 1, 4],
    "enterprises": [1, 3, 6, 1, 4, 1],
    # XUPS-MIB imports it from EATON-OIDS; its own comment gives it: enterprises(1) eaton(534).
    "eaton": [1, 3, 6, 1, 4, 1, 534],
}

# (Rust constant, MIB file, object name): what trapgate commands, reads back and probes.
OBJECTS = [
    # APC PowerNet-MIB: the UPS's outlet groups (SMT, SMX, SRT).
    ("APC_GROUP_COMMAND", "PowerNet-MIB", "upsOutletGroupControlCommand"),
    ("APC_GROUP_STATE", "PowerNet-MIB", "upsOutletGroupStatusGroupState"),
    ("APC_GROUP_PENDING", "PowerNet-MIB", "upsOutletGroupStatusCommandPending"),
    ("APC_GROUP_NAME", "PowerNet-MIB", "upsOutletGroupConfigName"),
    ("APC_GROUP_ON_DELAY", "PowerNet-MIB", "upsOutletGroupConfigPowerOnDelay"),
    ("APC_GROUP_OFF_DELAY", "PowerNet-MIB", "upsOutletGroupConfigPowerOffDelay"),
    ("APC_GROUP_REBOOT_DURATION", "PowerNet-MIB", "upsOutletGroupConfigRebootDuration"),
    # APC PowerNet-MIB: the whole UPS.
    ("APC_REBOOT_SHUTDOWN_UPS", "PowerNet-MIB", "upsAdvControlRebootShutdownUps"),
    ("APC_CONSERVE_BATTERY", "PowerNet-MIB", "upsBasicControlConserveBattery"),
    ("APC_OUTPUT_STATUS", "PowerNet-MIB", "upsBasicOutputStatus"),
    ("APC_SHUTOFF_DELAY", "PowerNet-MIB", "upsAdvConfigShutoffDelay"),
    ("APC_RETURN_DELAY", "PowerNet-MIB", "upsAdvConfigReturnDelay"),
    ("APC_LOW_BATTERY_RUNTIME", "PowerNet-MIB", "upsAdvConfigLowBatteryRunTime"),
    ("APC_MIN_RETURN_CAPACITY", "PowerNet-MIB", "upsAdvConfigMinReturnCapacity"),
    # APC PowerNet-MIB: the card's trap receivers.
    ("APC_TRAP_RECEIVER_ADDR", "PowerNet-MIB", "receiverAddr"),
    ("APC_TRAP_RECEIVER_ACCEPT", "PowerNet-MIB", "acceptThisReceiver"),
    ("APC_TRAP_RECEIVER_TYPE", "PowerNet-MIB", "receiveTrapType"),
    # APC switched rack PDUs, first and second generation.
    ("APC_RPDU_COMMAND", "PowerNet-MIB", "rPDUOutletControlOutletCommand"),
    ("APC_RPDU_STATE", "PowerNet-MIB", "rPDUOutletStatusOutletState"),
    ("APC_RPDU2_COMMAND", "PowerNet-MIB", "rPDU2OutletSwitchedControlCommand"),
    ("APC_RPDU2_STATE", "PowerNet-MIB", "rPDU2OutletSwitchedStatusState"),
    # RFC 1628 UPS-MIB's control group.
    ("RFC1628_SHUTDOWN_TYPE", "UPS-MIB.txt", "upsShutdownType"),
    ("RFC1628_SHUTDOWN_AFTER_DELAY", "UPS-MIB.txt", "upsShutdownAfterDelay"),
    ("RFC1628_STARTUP_AFTER_DELAY", "UPS-MIB.txt", "upsStartupAfterDelay"),
    ("RFC1628_AUTO_RESTART", "UPS-MIB.txt", "upsAutoRestart"),
    ("RFC1628_LOW_BATT_TIME", "UPS-MIB.txt", "upsConfigLowBattTime"),
    # Eaton XUPS-MIB: the whole UPS and its receptacles.
    ("EATON_LOAD_SHED_WITH_RESTART", "XUPS-MIB", "xupsLoadShedSecsWithRestart"),
    ("EATON_RECEP_SHED_WITH_RESTART", "XUPS-MIB", "xupsRecepShedSecsWithRestart"),
    ("EATON_RECEP_STATUS", "XUPS-MIB", "xupsRecepStatus"),
    ("EATON_RECEP_AUTO_OFF_DELAY", "XUPS-MIB", "xupsRecepAutoOffDelay"),
    ("EATON_RECEP_AUTO_ON_DELAY", "XUPS-MIB", "xupsRecepAutoOnDelay"),
    # CyberPower CPS-MIB: the whole UPS and its ePDUs.
    ("CPS_REBOOT_UPS", "CPS-MIB", "upsAdvanceControlRebootUps"),
    ("CPS_OUTPUT_STATUS", "CPS-MIB", "upsBaseOutputStatus"),
    ("CPS_SHUTOFF_DELAY", "CPS-MIB", "upsAdvanceConfigShutoffDelay"),
    ("CPS_RETURN_DELAY", "CPS-MIB", "upsAdvanceConfigReturnDelay"),
    ("CPS_LOW_BATTERY_RUNTIME", "CPS-MIB", "upsAdvanceConfigLowBatteryRunTime"),
    ("CPS_MIN_RETURN_CAPACITY", "CPS-MIB", "upsAdvanceConfigMinReturnCapacity"),
    ("CPS_EPDU_COMMAND", "CPS-MIB", "ePDUOutletControlOutletCommand"),
    ("CPS_EPDU_STATE", "CPS-MIB", "ePDUOutletStatusOutletState"),
]


def definitions(text):
    """Every `name ... ::= { parent n }` of the MIB: name -> (parent, n), and each
    OBJECT-TYPE's block (for its SYNTAX and ACCESS)."""
    text = re.sub(r"--[^\n]*", "", text)
    defs, blocks = {}, {}
    pat = re.compile(
        r"^[ \t]*([a-zA-Z][\w-]*)[ \t]+(OBJECT-TYPE|OBJECT[ \t]+IDENTIFIER|MODULE-IDENTITY|OBJECT-IDENTITY)\b"
        r"(.*?)::=\s*\{\s*([a-zA-Z][\w-]*)\s+(\d+)\s*\}",
        re.S | re.M,
    )
    for m in pat.finditer(text):
        name, kind, body, parent, n = m.groups()
        if kind.startswith("OBJECT") and "OBJECT-TYPE" in body:
            continue
        defs[name] = (parent, int(n))
        blocks[name] = body
    return defs, blocks


def resolve(name, defs, seen=()):
    if name in ROOTS:
        return ROOTS[name]
    if name not in defs or name in seen:
        raise KeyError(name)
    parent, n = defs[name]
    return resolve(parent, defs, seen + (name,)) + [n]


def syntax(body):
    """(access, named values) of an OBJECT-TYPE's block."""
    access = re.search(r"\b(?:MAX-)?ACCESS\s+([\w-]+)", body)
    values = []
    m = re.search(r"SYNTAX\s+INTEGER\s*\{(.*?)\}", body, re.S)
    if m:
        values = [(v, int(n)) for v, n in re.findall(r"([a-zA-Z][\w-]*)\s*\(\s*(-?\d+)\s*\)", m.group(1))]
    kind = re.search(r"SYNTAX\s+([\w-]+)", body)
    return (access.group(1) if access else "?"), (kind.group(1) if kind else "?"), values


def units(body, kind):
    """The unit of an object's value: its UNITS clause; for TimeTicks, hundredths of a
    second (RFC 2578's definition, whatever the DESCRIPTION's prose says: APC's and
    CyberPower's delays say "in seconds" and are TimeTicks on the wire, which NUT
    divides by 100 too); else what the DESCRIPTION names ("(seconds)", "in seconds",
    "percent"); else nothing."""
    m = re.search(r'UNITS\s+"([^"]*)"', body)
    if m:
        return m.group(1)
    if kind == "TimeTicks":
        return "hundredths of a second"
    text = " ".join(body.split())
    if re.search(r"\(seconds\)|in seconds", text):
        return "seconds"
    if re.search(r"percent|\(100%\)", text):
        return "percent"
    return ""


def main():
    mibs = {}
    for _, mib, _ in OBJECTS:
        if mib not in mibs:
            mibs[mib] = definitions((SRC / mib).read_text(errors="replace"))
    w = sys.stdout.write
    w("//! The objects that command UPS outputs, outlet groups and switched PDU outlets, read\n")
    w("//! their state back and hold the cards' settings: generated by tools/gen-power-tables.py\n")
    w("//! from the MIB files themselves (PowerNet-MIB, UPS-MIB, XUPS-MIB, CPS-MIB). Do not edit.\n\n")
    w("use super::Object;\n\n")
    for const, mib, name in OBJECTS:
        defs, blocks = mibs[mib]
        arcs = resolve(name, defs)
        access, kind, values = syntax(blocks[name])
        w(f"/// {name} ({mib}, {'.'.join(map(str, arcs))}), {access}, {kind}.\n")
        w(f"pub const {const}: Object = Object {{\n")
        w(f"    name: \"{name}\",\n")
        w(f"    mib: \"{mib.replace('.txt', '')}\",\n")
        w(f"    arcs: &[{', '.join(map(str, arcs))}],\n")
        w(f"    writable: {'true' if access in ('read-write', 'write-only', 'read-create') else 'false'},\n")
        w(f"    units: \"{units(blocks[name], kind)}\",\n")
        w("    values: &[")
        w(", ".join(f"(\"{v}\", {n})" for v, n in values))
        w("],\n};\n\n")


main()
