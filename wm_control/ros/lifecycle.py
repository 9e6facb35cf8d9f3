"""Managed (lifecycle) nodes as ROS 2 has them: rcl_lifecycle's default state machine and the services and
topic of rclcpp_lifecycle, so ``ros2 lifecycle get|set|list`` and a lifecycle manager drive our nodes.

:class:`StateMachine` is the state machine, pure (no ROS, no clock, no threads): the primary states
(unconfigured, inactive, active, finalized), the transition states between them, which transition is
available from which state, and the callbacks' results -> the next state, exactly as rcl_lifecycle's
default graph (:data:`TRANSITIONS`, in its registration order) and rclcpp_lifecycle's rules:

* a request names a transition by id or label (a label wins, looked up among the transitions of the current
  state: ``ros2 service call ... "{transition: {label: shutdown}}"`` has id 0); one that is not available
  from the current state is refused, the state unchanged (``success`` false);
* the transition's callback (``configure``, ``cleanup``, ``activate``, ``deactivate``, ``shutdown``; each
  called with the primary state it starts from) returns :data:`SUCCESS`, :data:`FAILURE` or :data:`ERROR`
  (True / None: success, False: failure); raising :class:`Failure` is a failure with its reason, any other
  exception an error (rclcpp: "Caught exception in callback"). Success goes on to the goal (configure ->
  inactive, cleanup -> unconfigured, activate -> active, deactivate -> inactive, shutdown -> finalized);
  failure goes back to the start state (shutdown: finalized all the same); an error goes to error processing,
  whose ``error`` callback decides: success -> unconfigured, anything else -> finalized. A missing callback
  succeeds, a missing ``error`` callback fails (rclcpp_lifecycle's defaults);
* ``change_state`` answers ``success`` = the callback succeeded.

:func:`serve` offers it on a node, as rclcpp_lifecycle does: ``~/change_state``, ``~/get_state``,
``~/get_available_states``, ``~/get_available_transitions``, ``~/get_transition_graph`` (lifecycle_msgs
services) and ``~/transition_event`` (lifecycle_msgs/msg/TransitionEvent, reliable, volatile, depth 10: one
message per step, start -> transition state -> next state). It uses only the :class:`~wm_control.ros.api.Node`
protocol, so it is the same on the dds and the rclpy backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# lifecycle_msgs/msg/State
UNKNOWN, UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = 0, 1, 2, 3, 4
CONFIGURING, CLEANINGUP, SHUTTINGDOWN, ACTIVATING, DEACTIVATING, ERRORPROCESSING = 10, 11, 12, 13, 14, 15
STATE_LABELS = {UNKNOWN: "unknown", UNCONFIGURED: "unconfigured", INACTIVE: "inactive", ACTIVE: "active",
                FINALIZED: "finalized", CONFIGURING: "configuring", CLEANINGUP: "cleaningup",
                SHUTTINGDOWN: "shuttingdown", ACTIVATING: "activating", DEACTIVATING: "deactivating",
                ERRORPROCESSING: "errorprocessing"}
PRIMARY_STATES = (UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED)

# lifecycle_msgs/msg/Transition: the ones a request may name ...
CREATE, CONFIGURE, CLEANUP, ACTIVATE, DEACTIVATE = 0, 1, 2, 3, 4
UNCONFIGURED_SHUTDOWN, INACTIVE_SHUTDOWN, ACTIVE_SHUTDOWN, DESTROY = 5, 6, 7, 8
# ... and the ones a callback's result takes: ON_<X>_SUCCESS, _FAILURE, _ERROR = base, base + 1, base + 2
ON_CONFIGURE, ON_CLEANUP, ON_ACTIVATE, ON_DEACTIVATE, ON_SHUTDOWN, ON_ERROR = 10, 20, 30, 40, 50, 60

# rclcpp_lifecycle's CallbackReturn, as rcl_lifecycle labels the transitions they take
SUCCESS, FAILURE, ERROR = "transition_success", "transition_failure", "transition_error"
_OFFSET = {SUCCESS: 0, FAILURE: 1, ERROR: 2}


class Failure(Exception):
    """Raised by a callback: the transition fails (not an error) for this reason."""


@dataclass(frozen=True)
class Transition:
    id: int
    label: str
    start: int
    goal: int


def _graph() -> tuple[Transition, ...]:
    """rcl_lifecycle's default state machine (default_state_machine.c), in its registration order."""
    t = []
    for tid, label, start, busy, done, on in ((CONFIGURE, "configure", UNCONFIGURED, CONFIGURING, INACTIVE, ON_CONFIGURE),
                                              (CLEANUP, "cleanup", INACTIVE, CLEANINGUP, UNCONFIGURED, ON_CLEANUP),
                                              (ACTIVATE, "activate", INACTIVE, ACTIVATING, ACTIVE, ON_ACTIVATE),
                                              (DEACTIVATE, "deactivate", ACTIVE, DEACTIVATING, INACTIVE, ON_DEACTIVATE)):
        t += [Transition(tid, label, start, busy), Transition(on, SUCCESS, busy, done),
              Transition(on + 1, FAILURE, busy, start), Transition(on + 2, ERROR, busy, ERRORPROCESSING)]
    t += [Transition(UNCONFIGURED_SHUTDOWN, "shutdown", UNCONFIGURED, SHUTTINGDOWN),
          Transition(INACTIVE_SHUTDOWN, "shutdown", INACTIVE, SHUTTINGDOWN),
          Transition(ACTIVE_SHUTDOWN, "shutdown", ACTIVE, SHUTTINGDOWN),
          Transition(ON_SHUTDOWN, SUCCESS, SHUTTINGDOWN, FINALIZED),
          Transition(ON_SHUTDOWN + 1, FAILURE, SHUTTINGDOWN, FINALIZED),
          Transition(ON_SHUTDOWN + 2, ERROR, SHUTTINGDOWN, ERRORPROCESSING),
          Transition(ON_ERROR, SUCCESS, ERRORPROCESSING, UNCONFIGURED),
          Transition(ON_ERROR + 1, FAILURE, ERRORPROCESSING, FINALIZED),
          Transition(ON_ERROR + 2, ERROR, ERRORPROCESSING, FINALIZED)]
    return tuple(t)


TRANSITIONS: tuple[Transition, ...] = _graph()
#: transition state -> the callback that runs in it
CALLBACK_OF = {CONFIGURING: "configure", CLEANINGUP: "cleanup", ACTIVATING: "activate",
               DEACTIVATING: "deactivate", SHUTTINGDOWN: "shutdown", ERRORPROCESSING: "error"}


@dataclass
class Outcome:
    """What a request did. ``result`` is None when it was refused (nothing ran, the state is unchanged)."""

    transition: Transition | None
    start: int
    state: int
    result: str | None = None
    reason: str = ""
    steps: list[tuple[Transition, int, int]] = field(default_factory=list)
    """(transition, from, to) for each step taken: what ``~/transition_event`` publishes."""

    @property
    def success(self) -> bool:
        """What ``change_state`` answers: the transition's callback succeeded."""
        return self.result == SUCCESS


def _result_of(callback: Callable[[int], Any] | None, state: int, default: str) -> tuple[str, str]:
    """(SUCCESS | FAILURE | ERROR, reason) of one callback, called with the state it starts from."""
    if callback is None:
        return default, ""
    try:
        r = callback(state)
    except Failure as exc:
        return FAILURE, str(exc)
    except Exception as exc:  # noqa: BLE001 - as rclcpp: an exception in a callback is an ERROR
        return ERROR, f"{type(exc).__name__}: {exc}"
    if r is None or r is True:
        return SUCCESS, ""
    if r is False:
        return FAILURE, ""
    if isinstance(r, str) and r in _OFFSET:
        return r, ""
    return ERROR, f"callback returned {r!r}"


class StateMachine:
    """One managed node's state. ``callbacks``: name (``configure``, ``cleanup``, ``activate``, ``deactivate``,
    ``shutdown``, ``error``) -> ``callback(previous_state) -> SUCCESS | FAILURE | ERROR | bool | None``.
    ``listeners``: called as ``listener(transition, start, goal)`` for every step taken."""

    def __init__(self, callbacks: dict[str, Callable[[int], Any]] | None = None, state: int = UNCONFIGURED):
        self.callbacks = dict(callbacks or {})
        unknown = set(self.callbacks) - set(CALLBACK_OF.values())
        if unknown:
            raise ValueError(f"unknown lifecycle callbacks {sorted(unknown)}; known: {sorted(CALLBACK_OF.values())}")
        self.state = state
        self.listeners: list[Callable[[Transition, int, int], None]] = []

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    def available(self) -> list[Transition]:
        """The transitions from the current state (``get_available_transitions``)."""
        return [t for t in TRANSITIONS if t.start == self.state]

    def lookup(self, transition_id: int = 0, label: str = "") -> Transition | None:
        """The transition a request names, if it is available now; a label wins over the id (rclcpp)."""
        for t in self.available():
            if (t.label == label) if label else (t.id == transition_id):
                return t
        return None

    def _step(self, t: Transition, out: Outcome) -> None:
        out.steps.append((t, self.state, t.goal))
        start, self.state = self.state, t.goal
        for listener in self.listeners:
            listener(t, start, t.goal)

    def _finish(self, busy: int, result: str) -> Transition:
        return next(t for t in TRANSITIONS if t.start == busy and t.label == result)

    def trigger(self, transition_id: int = 0, label: str = "") -> Outcome:
        """Take the transition named by ``transition_id`` or ``label`` (a request's), as rclcpp does."""
        start = self.state
        t = self.lookup(int(transition_id), str(label)) if start in PRIMARY_STATES else None
        if t is None:  # not available from here (or the machine is in a transition: a callback asked)
            have = ", ".join(f"{x.label} [{x.id}]" for x in self.available()) or "none"
            what = repr(label) if label else f"id {transition_id}"
            return Outcome(None, start, start, None,
                           f"no transition {what} from {STATE_LABELS.get(start, start)} (available: {have})")
        out = Outcome(t, start, start)
        self._step(t, out)  # -> the transition state
        result, reason = _result_of(self.callbacks.get(CALLBACK_OF[t.goal]), start, SUCCESS)
        out.result, out.reason = result, reason
        self._step(self._finish(t.goal, result), out)
        if self.state == ERRORPROCESSING:  # the error callback decides: success -> unconfigured, else finalized
            handled, why = _result_of(self.callbacks.get("error"), start, FAILURE)
            self._step(self._finish(ERRORPROCESSING, handled), out)
            if why:
                out.reason = f"{reason}; error processing: {why}" if reason else why
        out.state = self.state
        return out


# ------------------------------------------------------------------------------------------
# On a node: rclcpp_lifecycle's services and topic
# ------------------------------------------------------------------------------------------
class Server:
    """A :class:`StateMachine` served on a node (:func:`serve`)."""

    def __init__(self, node: Any, machine: StateMachine):
        self.node, self.machine = node, machine
        from wm_control.ros import topics  # the names, types and QoS (the table)

        m = node.msg
        self.pub = topics.TRANSITION_EVENT.publisher(node)
        machine.listeners.append(self.publish_event)
        create = getattr(node, "create_service", None)  # (a stand-in node of a test may have none)
        self.services = [create(s.type, s.name, getattr(self, s.name[2:])) for s in topics.LIFECYCLE_SERVICES] \
            if create is not None else []
        self._state = lambda s: m("lifecycle_msgs/msg/State", id=int(s), label=STATE_LABELS[s])
        self._transition = lambda t: m("lifecycle_msgs/msg/Transition", id=int(t.id), label=t.label)

    def description(self, t: Transition) -> Any:
        return self.node.msg("lifecycle_msgs/msg/TransitionDescription", transition=self._transition(t),
                             start_state=self._state(t.start), goal_state=self._state(t.goal))

    def publish_event(self, t: Transition, start: int, goal: int) -> None:
        stamp = self.node.now_msg()  # the node's clock, in ns (exactly: sec and nanosec, not a float)
        self.pub.publish(self.node.msg("lifecycle_msgs/msg/TransitionEvent",
                                       timestamp=max(0, int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)),
                                       transition=self._transition(t), start_state=self._state(start),
                                       goal_state=self._state(goal)))

    def change(self, transition_id: int = 0, label: str = "") -> Outcome:
        """A transition, logged in one line (a refusal or a failure with its reason)."""
        out = self.machine.trigger(transition_id, label)
        log = self.node.logger
        public = next((t.label for t in TRANSITIONS if t.id == transition_id and t.id < ON_CONFIGURE), None)
        what = out.transition.label if out.transition else (label or public or f"transition {transition_id}")
        if out.result is None:
            log.warning("lifecycle: %s refused: %s", what, out.reason)
        elif out.success:
            log.info("lifecycle: %s: %s -> %s", what, STATE_LABELS[out.start], STATE_LABELS[out.state])
        else:
            log.error("lifecycle: %s %s: %s; now %s", what, "failed" if out.result == FAILURE else "error",
                      out.reason or "the callback said no", STATE_LABELS[out.state])
        return out

    # ---- the services ---------------------------------------------------------------------------
    def change_state(self, rq: Any, rs: Any) -> Any:
        rs.success = self.change(int(rq.transition.id), str(rq.transition.label)).success
        return rs

    def get_state(self, _rq: Any, rs: Any) -> Any:
        rs.current_state = self._state(self.machine.state)
        return rs

    def get_available_states(self, _rq: Any, rs: Any) -> Any:
        rs.available_states = [self._state(s) for s in STATE_LABELS]
        return rs

    def get_available_transitions(self, _rq: Any, rs: Any) -> Any:
        rs.available_transitions = [self.description(t) for t in self.machine.available()]
        return rs

    def get_transition_graph(self, _rq: Any, rs: Any) -> Any:
        rs.available_transitions = [self.description(t) for t in TRANSITIONS]
        return rs


def serve(node: Any, machine: StateMachine) -> Server:
    """Offer ``machine`` on ``node``: the lifecycle services under the node's name and ``~/transition_event``."""
    return Server(node, machine)
