//! Generated from Appendix A of the OpenClaw gateway v4 protocol reference (openclaw 2026.9.6):
//! every core method and the scope it requires. Data, not logic: `scopes.rs` interprets it.
//! Regenerate with `tools/gen-scopes.py` if the reference changes.

use super::scopes::{MethodSpec, Req, Scope, CP_WRITE, HIDDEN, STARTUP};

/// All 482 core methods, in the reference's order.
pub static CORE_METHODS: &[MethodSpec] = &[
    MethodSpec {
        name: "health",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "diagnostics.stability",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "diagnostics.lanes",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "diagnostics.cpuProfile",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "diagnostics.heapProfile",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.dreamDiary",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.backfillDreamDiary",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.resetDreamDiary",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.resetGroundedShortTerm",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.repairDreamingArtifacts",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "doctor.memory.dedupeDreamDiary",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "logs.tail",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "channels.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "channels.start",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "channels.stop",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "channels.logout",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "usage.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "usage.cost",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.usage",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "sessions.usage.timeseries",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "sessions.usage.logs",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "tts.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tts.providers",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tts.personas",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tts.enable",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tts.disable",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tts.convert",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tts.setProvider",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tts.setPersona",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tts.speak",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "config.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "config.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "config.apply",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "config.patch",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "config.schema",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "config.schema.lookup",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "config.openFile",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "exec.approvals.get",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approvals.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approvals.node.get",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approvals.node.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.get",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.list",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.request",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.waitDecision",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.resolve",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.grants.list",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "exec.approval.grants.revoke",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "question.request",
        req: Req::Scope(Scope::Questions),
        flags: 0,
    },
    MethodSpec {
        name: "question.waitAnswer",
        req: Req::Scope(Scope::Questions),
        flags: 0,
    },
    MethodSpec {
        name: "question.resolve",
        req: Req::Scope(Scope::Questions),
        flags: 0,
    },
    MethodSpec {
        name: "question.get",
        req: Req::Scope(Scope::Questions),
        flags: 0,
    },
    MethodSpec {
        name: "question.list",
        req: Req::Scope(Scope::Questions),
        flags: 0,
    },
    MethodSpec {
        name: "plugin.approval.list",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "plugin.approval.request",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "plugin.approval.waitDecision",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "plugin.approval.resolve",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "secrets.reload",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "secrets.resolve",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "assistant.media.get",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "approval.get",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "approval.resolve",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "approval.history",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "secrets.store.list",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "secrets.store.set",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "secrets.store.delete",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.uiDescriptors",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.sessionAction",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.chat",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.chat.history",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.approval.list",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.detect",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.activate",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.activate.start",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.auth.start",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.prepare.start",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.setup.verify",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "openclaw.changes.list",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "wizard.start",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "wizard.next",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "wizard.cancel",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "wizard.status",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "talk.catalog",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "talk.config",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "talk.client.create",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.client.transcript",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.client.close",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.client.toolCall",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.client.steer",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.create",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.appendAudio",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.cancelOutput",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.acknowledgeMark",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.submitToolResult",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.steer",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.session.close",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.speak",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.voice.get",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.voice.set",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.voice.complete",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "talk.mode",
        req: Req::Scope(Scope::Talk),
        flags: 0,
    },
    MethodSpec {
        name: "commands.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "models.list",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "models.authStatus",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "models.authLogout",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "models.authRefresh",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "models.authSetApiKey",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "tools.catalog",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tools.effective",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "tools.invoke",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.view",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.listTools",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.listResources",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.listResourceTemplates",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.readResource",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.callTool",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.app.updateModelContext",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "board.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "board.update",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "board.widget.put",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "board.widget.grant",
        req: Req::Scope(Scope::Approvals),
        flags: 0,
    },
    MethodSpec {
        name: "board.widget.appView",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "board.event",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "board.prompt.authorize",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "board.data.read",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "board.action",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "audit.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "audit.activity.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "audit.run.inspect",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.self",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.linkEmail",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "users.setDisplayName",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.setAvatar",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.setRole",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "users.listAuthLinks",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.listModelAccounts",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.selectModelAccount",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.linkAuthProfile",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "users.unlinkAuthProfile",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.authConnect.start",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.authConnect.answer",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.authConnect.status",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.authConnect.cancel",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.authConnect.catalog",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.prefs.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "users.prefs.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "users.github.status",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "users.github.authorize.start",
        req: Req::Scope(Scope::Read),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "users.github.authorize.poll",
        req: Req::Scope(Scope::Read),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "users.github.authorize.cancel",
        req: Req::Scope(Scope::Read),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "users.github.disconnect",
        req: Req::Scope(Scope::Read),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "users.linkChannelIdentity",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "users.unlinkChannelIdentity",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "users.listChannelIdentities",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.cancel",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.retry",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.dismiss",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tasks.history",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "taskSuggestions.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "taskSuggestions.create",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "taskSuggestions.accept",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "taskSuggestions.dismiss",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "environments.list",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "environments.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "environments.create",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "environments.destroy",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "worker.desktop.observe",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP,
    },
    MethodSpec {
        name: "worker.desktop.launch",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP,
    },
    MethodSpec {
        name: "desktop.observe",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP,
    },
    MethodSpec {
        name: "desktop.launch",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP,
    },
    MethodSpec {
        name: "environments.prepare",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "desktop.release",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP,
    },
    MethodSpec {
        name: "environments.session.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "environments.session.create",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "environments.session.destroy",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "environments.session.exec",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "worktrees.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "worktrees.branches",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "worktrees.create",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "worktrees.remove",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "worktrees.restore",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "worktrees.gc",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "fs.listDir",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "agents.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "agents.create",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "agents.update",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "agents.delete",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "agents.files.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "agents.files.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "agents.files.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.files.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.files.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.files.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.files.reveal",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "artifacts.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "artifacts.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "artifacts.download",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.read",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.save",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.mutate",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.activate",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.import",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "skills.library.upload",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "skills.search",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.detail",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.securityVerdicts",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.skillCard",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.bins",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "skills.upload.begin",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.upload.chunk",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.upload.commit",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.install",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.update",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.curator.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.curator.pin",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.curator.unpin",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.curator.restore",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.inspect",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.historyStatus",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.historyScan",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.create",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.update",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.revise",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.requestRevision",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.apply",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.reject",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.quarantine",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.events.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "skills.proposals.evaluate",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "skills.workshop.read",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "update.status",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "update.run",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "update.hold",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "update.runs.get",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "update.runs.list",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "update.report",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "voicewake.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "voicewake.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "voicewake.routing.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.list",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.preview",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.describe",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.cleanup",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.get",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "sessions.resolve",
        req: Req::Scope(Scope::Read),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "sessions.search",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.storage.status",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.storage.run",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.subscribe",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.messages.subscribe",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.messages.unsubscribe",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.viewers.set",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.branches.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.branches.switch",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.rewind",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.fork",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.create",
        req: Req::Dynamic,
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.recover",
        req: Req::Scope(Scope::Write),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.send",
        req: Req::Scope(Scope::Write),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.steer",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "sessions.abort",
        req: Req::Scope(Scope::Write),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.patch",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "sessions.pluginPatch",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.reset",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.patchMany",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "sessions.assignOwner",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.setInvolvement",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.goal.update",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.goal.clear",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.delete",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "sessions.compact",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.defaults",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.put",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.rename",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.update",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.groups.delete",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "last-heartbeat",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "set-heartbeats",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "gateway.identity.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "system-presence",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "system-event",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "system.info",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "wake",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "cron.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "cron.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "cron.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "cron.scratch.get",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "cron.scratch.set",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "cron.add",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "cron.update",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "cron.remove",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "cron.run",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "cron.runs",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "node.pair.list",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "node.pair.approve",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "node.pair.reject",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "node.pair.remove",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "node.rename",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "node.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "node.describe",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "node.pluginSurface.refresh",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.pluginTools.update",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.skills.update",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.runnerInventory.update",
        req: Req::NodeRole,
        flags: HIDDEN,
    },
    MethodSpec {
        name: "node.invoke",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "node.pending.pull",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.pending.ack",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.invoke.progress",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.invoke.result",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.event",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "plugin.surface.refresh",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.list",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.approve",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.reject",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.remove",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.rename",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.token.rotate",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.token.revoke",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "device.scopes.requestUpgrade",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "device.scopes.waitUpgrade",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "device.pair.setupCode",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "device.pair.setupStatus",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "node.pending.drain",
        req: Req::NodeRole,
        flags: 0,
    },
    MethodSpec {
        name: "node.pending.enqueue",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "gateway.restart.preflight",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "gateway.restart.request",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "message.action",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "send",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "poll",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "conversations.send",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "conversations.turn",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "conversations.turn.cancel",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "conversations.list",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "agent",
        req: Req::Dynamic,
        flags: STARTUP,
    },
    MethodSpec {
        name: "agent.wait",
        req: Req::Scope(Scope::Write),
        flags: STARTUP,
    },
    MethodSpec {
        name: "agent.identity.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "chat.history",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "chat.startup",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "chat.metadata",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "chat.message.get",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "chat.inject",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "chat.toolTitles",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "chat.abort",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "chat.send",
        req: Req::Scope(Scope::Write),
        flags: STARTUP,
    },
    MethodSpec {
        name: "terminal.open",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.input",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.resize",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.close",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.attach",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.list",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "terminal.upload",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "channels.pairing.list",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "channels.pairing.approve",
        req: Req::Dynamic,
        flags: 0,
    },
    MethodSpec {
        name: "channels.pairing.dismiss",
        req: Req::Scope(Scope::Pairing),
        flags: 0,
    },
    MethodSpec {
        name: "push.test",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "push.web.vapidPublicKey",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "push.web.subscribe",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "push.web.unsubscribe",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "push.web.test",
        req: Req::Scope(Scope::Write),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "push.web.preferences.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "push.web.preferences.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "attach.grant",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "attach.revoke",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "connect",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "nativeHook.invoke",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "web.login.start",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "web.login.wait",
        req: Req::Scope(Scope::Admin),
        flags: HIDDEN,
    },
    MethodSpec {
        name: "controlUi.githubPreview",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "controlUi.sessionPullRequests.subscribe",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "controlUi.sessionPreview",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "controlUi.sessionPullRequests.checks",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "controlUi.linkPreview",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "controlUi.githubDetail",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "agents.workspace.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "agents.workspace.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.search",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.inspect",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.catalog.browse",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.catalog.categories",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.catalog.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.credentials.inspect",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.skills.read",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.install",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.setEnabled",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.uninstall",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.refresh",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.reload",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "gateway.suspend.prepare",
        req: Req::Scope(Scope::Admin),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "gateway.suspend.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "gateway.suspend.resume",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "gateway.suspend.handoff",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "sessions.diff",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.catalog.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.catalog.read",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.catalog.continue",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.catalog.archive",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.catalog.startTerminal",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.dispatch",
        req: Req::Dynamic,
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "sessions.reclaim",
        req: Req::Scope(Scope::Write),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "sessions.move",
        req: Req::Dynamic,
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "models.probe",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "migrations.memory.plan",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "migrations.memory.apply",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "ui.command",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.discussion.info",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "session.discussion.open",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.observer.visibility",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "session.visibility.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.members.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "session.members.add",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.members.remove",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.members.listEvidence",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "session.publicShare.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.suggestions.add",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.suggestions.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "session.suggestions.resolve",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "session.typing",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.companion.ask",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.companion.state",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.companion.reset",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "memory.search",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "hooks.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "projects.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "projects.register",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "projects.remove",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "projects.add",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "projects.searchRemote",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "portal.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "portal.open",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "portal.close",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "progressCard.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "progressCard.put",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "progressCard.refresh",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "tools.github.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "tools.github.configure",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "tools.github.authorize.start",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "tools.github.authorize.poll",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "tools.github.authorize.cancel",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "sessions.github.publish",
        req: Req::Scope(Scope::SessionsWrite),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "sessions.github.options",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.github.status",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "sessions.github.confirm",
        req: Req::Scope(Scope::Write),
        flags: STARTUP | CP_WRITE,
    },
    MethodSpec {
        name: "sessions.title.prepare",
        req: Req::Scope(Scope::Write),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "users.mentionable",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "mentions.list",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "mentions.dismiss",
        req: Req::Scope(Scope::Read),
        flags: STARTUP,
    },
    MethodSpec {
        name: "transcripts.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "transcripts.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "transcripts.export",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "transcripts.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "transcripts.summarize",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "models.authOrderSet",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "canvas.document.view",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "canvas.document.preview",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.controlUi.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.controlUi.reload",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "plugins.controlUi.report",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "plugins.controlUi.status",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "claws.monitors",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "models.authLogin",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "claws.packages.remove",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "computer.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "computer.invoke",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.activitySummary.ensure",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "mcp.authLogin",
        req: Req::Scope(Scope::Admin),
        flags: CP_WRITE,
    },
    MethodSpec {
        name: "themes.list",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "themes.get",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "themes.set",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "themes.import",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
    MethodSpec {
        name: "webSearch.status",
        req: Req::Scope(Scope::Read),
        flags: 0,
    },
    MethodSpec {
        name: "webSearch.test",
        req: Req::Scope(Scope::Admin),
        flags: 0,
    },
    MethodSpec {
        name: "sessions.providerReview.continue",
        req: Req::Scope(Scope::Write),
        flags: 0,
    },
];
