"""The Risk aggregate (stream ``risk-<uuid>``): one entry of a program's risk register.

``commands``, ``events`` and ``state`` hold its types, ``decide`` and ``evolve`` its rules;
this package re-exports every public name, so callers write
``from programledger.domain.risk import IdentifyRisk`` or ``risk.decide(state, command)``.
"""

from __future__ import annotations

from programledger.domain.risk.commands import (
    AcceptRisk,
    AssessRisk,
    CloseRisk,
    EscalateRisk,
    IdentifyRisk,
    ReopenRisk,
    ReportRiskMaterialised,
    ReviewRisk,
    ReviseMitigationPlan,
    RiskCommand,
    StartMitigation,
    UpdateRiskDetails,
)
from programledger.domain.risk.decide import RISK_LIFECYCLE, decide
from programledger.domain.risk.events import (
    RISK_EVENT_TYPES,
    RiskAccepted,
    RiskAssessed,
    RiskClosed,
    RiskDetailsUpdated,
    RiskEscalated,
    RiskEvent,
    RiskIdentified,
    RiskMaterialised,
    RiskMitigationPlanRevised,
    RiskMitigationStarted,
    RiskReopened,
    RiskReviewed,
)
from programledger.domain.risk.evolve import evolve, fold
from programledger.domain.risk.state import (
    Acceptance,
    Escalation,
    Materialisation,
    ResponseStrategy,
    Risk,
    RiskCategory,
    RiskStatus,
    SeverityBand,
    risk_score,
    risk_stream_id,
    severity_band,
)

__all__ = [
    "RISK_EVENT_TYPES",
    "RISK_LIFECYCLE",
    "AcceptRisk",
    "Acceptance",
    "AssessRisk",
    "CloseRisk",
    "EscalateRisk",
    "Escalation",
    "IdentifyRisk",
    "Materialisation",
    "ReopenRisk",
    "ReportRiskMaterialised",
    "ResponseStrategy",
    "ReviewRisk",
    "ReviseMitigationPlan",
    "Risk",
    "RiskAccepted",
    "RiskAssessed",
    "RiskCategory",
    "RiskClosed",
    "RiskCommand",
    "RiskDetailsUpdated",
    "RiskEscalated",
    "RiskEvent",
    "RiskIdentified",
    "RiskMaterialised",
    "RiskMitigationPlanRevised",
    "RiskMitigationStarted",
    "RiskReopened",
    "RiskReviewed",
    "RiskStatus",
    "SeverityBand",
    "StartMitigation",
    "UpdateRiskDetails",
    "decide",
    "evolve",
    "fold",
    "risk_score",
    "risk_stream_id",
    "severity_band",
]
