//! Event recipients (protocol §6.3): which connections may receive an event, by role and scope,
//! failing closed for unknown names; and which events may be dropped for slow consumers (§6.4).

use super::scopes::{Role, Scope, ScopeSet};

/// Who may receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every authenticated connection, nodes included.
    All,
    /// Operators holding this scope (with implications).
    Operators(Scope),
    /// Nobody (unknown event names fail closed).
    Nobody,
}

/// The audience of an event name.
pub fn audience(event: &str) -> Audience {
    match event {
        "tick" | "health" | "heartbeat" | "shutdown" | "gateway.suspension"
        | "update.available" => Audience::All,
        "agent"
        | "chat"
        | "chat.send_timing"
        | "chat.side_result"
        | "cron"
        | "presence"
        | "talk.event"
        | "task"
        | "task.suggestion"
        | "config.changed"
        | "users.prefs.changed"
        | "mentions.changed"
        | "skills.changed"
        | "plugins.changed"
        | "voicewake.changed"
        | "voicewake.routing.changed"
        | "node.presence"
        | "node.hostStats"
        | "node.runnerInventory.changed"
        | "sessions.catalog.host"
        | "sessions.changed"
        | "controlUi.sessionPullRequests.changed"
        | "plugins.controlUi.changed"
        | "session.message"
        | "session.observer"
        | "session.operation"
        | "session.sharing"
        | "session.sharing.evidence"
        | "session.suggestion"
        | "session.typing"
        | "session.tool"
        | "board.changed"
        | "board.command"
        | "progressCard.changed"
        | "ui.command"
        | "portal.changed" => Audience::Operators(Scope::Read),
        "chat.metadata.changed" => Audience::Operators(Scope::SessionsRead),
        "exec.approval.requested"
        | "exec.approval.resolved"
        | "plugin.approval.requested"
        | "plugin.approval.resolved"
        | "openclaw.approval.requested"
        | "openclaw.approval.resolved"
        | "session.approval" => Audience::Operators(Scope::Approvals),
        "question.requested" | "question.resolved" => Audience::Operators(Scope::Questions),
        "device.pair.changed"
        | "device.pair.requested"
        | "device.pair.resolved"
        | "device.pair.setup.completed"
        | "device.pair.setup.deliveryUncertain"
        | "node.pair.requested"
        | "node.pair.resolved" => Audience::Operators(Scope::Pairing),
        "talk.mode" | "talk.voice.change" => Audience::Operators(Scope::Talk),
        "update.run.changed" | "plugins.install.progress" | "terminal.data" | "terminal.exit" => {
            Audience::Operators(Scope::Admin)
        }
        _ => Audience::Nobody,
    }
}

/// May a connection with this role and these scopes receive the event?
pub fn may_receive(audience: Audience, role: Role, scopes: &ScopeSet) -> bool {
    match audience {
        Audience::All => true,
        Audience::Operators(s) => role == Role::Operator && scopes.satisfies(s),
        Audience::Nobody => false,
    }
}

/// Events skipped (seq still consumed) rather than closing a slow consumer.
pub fn droppable(event: &str) -> bool {
    matches!(
        event,
        "presence"
            | "heartbeat"
            | "cron"
            | "config.changed"
            | "chat.metadata.changed"
            | "sessions.changed"
            | "node.hostStats"
            | "plugins.changed"
            | "portal.changed"
            | "talk.mode"
    ) || event.starts_with("device.pair.")
        || event.starts_with("node.pair.")
        || event.starts_with("voicewake.")
        || event.ends_with(".approval.requested")
        || event.ends_with(".approval.resolved")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards() {
        let read = ScopeSet::from_strs(["operator.read"]);
        let none = ScopeSet::default();
        assert!(may_receive(audience("tick"), Role::Node, &none));
        assert!(may_receive(audience("presence"), Role::Operator, &read));
        assert!(!may_receive(audience("presence"), Role::Operator, &none));
        assert!(!may_receive(audience("presence"), Role::Node, &read));
        assert!(!may_receive(
            audience("device.pair.requested"),
            Role::Operator,
            &read
        ));
        assert!(!may_receive(
            audience("made.up"),
            Role::Operator,
            &ScopeSet::from_strs(["operator.admin"])
        ));
    }

    #[test]
    fn drop_policy() {
        assert!(droppable("presence"));
        assert!(droppable("device.pair.requested"));
        assert!(!droppable("tick"));
        assert!(!droppable("health"));
        assert!(!droppable("shutdown"));
    }
}
