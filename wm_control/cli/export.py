"""``export`` (checkpoint -> verified bundle) and ``bundle verify|keygen|sign``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from wm_control.cli.flags import choose, parse
from wm_control.errors import UserError


@dataclass
class ExportOptions:
    """Checkpoint -> verified bundle (ONNX graphs with their normalisers inside + manifest.yaml)."""

    checkpoint: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A training run's folder (its checkpoint.yaml says the kind)."""
    out: str
    """The bundle folder."""
    max_step: float = 0.15
    """BC: the rate limit stored in the bundle (rad per tick)."""
    policy_bundle: str | None = None
    """Ensemble: also carry this bundle's policy graph."""


def cmd_export(argv: list[str]) -> int:
    import yaml

    from wm_control.world.bundle import load_bundle

    o, _ = parse("wm-control export", argv, ExportOptions)
    kind = yaml.safe_load((Path(o.checkpoint) / "checkpoint.yaml").read_text()).get("kind")
    if kind == "visual":
        from wm_control.train.visual import export_visual

        out = export_visual(o.checkpoint, o.out)
    elif kind == "ensemble":
        from wm_control.train.ensemble import export_ensemble

        out = export_ensemble(o.checkpoint, o.out, policy_bundle=o.policy_bundle)
    elif kind == "ppo_policy":
        from wm_control.train.ppo import export_ppo

        out = export_ppo(o.checkpoint, o.out)
    else:
        from wm_control.train.bc import export_bc

        out = export_bc(o.checkpoint, o.out, max_step=o.max_step)
    b = load_bundle(out)
    print(f"bundle {out} ({b.id}): graphs {sorted(b.manifest['graphs'])}, joints {b.joint_names}")
    return 0


@dataclass
class VerifyOptions:
    """Every check a node makes before it loads the bundle; prints its id (to pin with bundle_id:=)."""

    bundle: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="BUNDLE")]
    expect_id: str | None = None
    """Refuse unless the bundle id is this one."""
    trusted_key: Annotated[list[str], tyro.conf.UseAppendAction] = field(default_factory=list)
    """An ed25519 public key (PEM) whose signature is accepted (repeatable)."""
    require_signature: bool = False
    """Refuse a bundle without a valid signature by a trusted key."""
    robot: str | None = None
    """A robot config (YAML, or a name in config/robots/): refuse unless the bundle fits that robot
    (joint names, control rate, command interface, camera, limits inside the robot's)."""
    visual: str | None = None
    """A policy that sees the camera: the visual bundle the world_model node will run, which must be the one
    the policy was trained on (default: the folder its bundle recorded, when it is there)."""


@dataclass
class KeygenOptions:
    """A new ed25519 key pair: DIR/NAME.key (keep it off the robot) and DIR/NAME.pub."""

    dir: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="DIR")]
    name: str = "bundle_signing"


@dataclass
class SignOptions:
    """Verify the bundle, then write BUNDLE/bundle.sig over its id."""

    bundle: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="BUNDLE")]
    key: str
    """The private key (PEM) from `bundle keygen`."""


def cmd_verify(argv: list[str]) -> int:
    """``wm-control verify BUNDLE [--robot CONFIG]``: the same as ``bundle verify``."""
    return cmd_bundle(["verify", *argv])


def cmd_bundle(argv: list[str]) -> int:
    from wm_control.world import bundle as bmod

    what, argv = choose("wm-control bundle", argv, {"verify": VerifyOptions.__doc__, "keygen": KeygenOptions.__doc__,
                                                    "sign": SignOptions.__doc__})
    if what == "keygen":
        k, _ = parse("wm-control bundle keygen", argv, KeygenOptions)
        key, pub = bmod.generate_keypair(k.dir, k.name)
        print(f"wrote {key} (private: keep it off the robot) and {pub} (give it to the nodes: trusted_keys)")
        return 0
    if what == "sign":
        s, _ = parse("wm-control bundle sign", argv, SignOptions)
        sig = bmod.sign_bundle(s.bundle, s.key)
        print(f"signed bundle {bmod.load_bundle(s.bundle).id} -> {sig}")
        return 0
    v, _ = parse("wm-control bundle verify", argv, VerifyOptions)
    b = bmod.load_bundle(v.bundle, expect_id=v.expect_id, trusted_keys=v.trusted_key or None,
                         require_signature=v.require_signature)
    signed = f", signed by key {b.signed_by}" if b.signed_by else ""
    print(f"bundle {v.bundle}: ok, id {b.id}{signed}; joints {b.joint_names}, {b.control_rate:g} Hz, "
          f"graphs {sorted(b.manifest['graphs'])}")
    latent = b.manifest["graphs"].get("policy", {}).get("latent")
    if latent:
        where = Path(v.visual or latent.get("bundle") or "")
        if v.visual or (where / "manifest.yaml").exists():
            try:
                bmod.load_bundle(where, expect_id=latent["bundle_id"])
            except bmod.BundleError as exc:
                raise UserError(f"the policy reads the latents of visual bundle {latent['bundle_id'][:12]}: "
                                f"{' '.join(str(exc).split())}") from None
            print(f"the policy sees the camera: visual bundle {latent['bundle_id']} ({latent['dim']} values) "
                  f"is at {where}")
        else:
            print(f"the policy sees the camera: run world_model with visual bundle {latent['bundle_id']} "
                  f"(recorded at {latent.get('bundle') or '?'}, not there; check one with --visual)")
    if v.robot:
        from wm_control.robot import check_bundle_for_robot, load_robot_config

        robot = load_robot_config(v.robot)
        eff = check_bundle_for_robot(b, robot)
        print(f"fits robot {robot.name}: enforced limits " + ", ".join(
            f"{j} [{lo:.3f}, {hi:.3f}] step {st:.3f}" for j, lo, hi, st in
            zip(eff["joint_names"], eff["lower"], eff["upper"], eff["max_step"])) + f" at {eff['control_rate']:g} Hz")
    return 0
