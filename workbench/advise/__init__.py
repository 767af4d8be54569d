"""Advice around a run: should you fine-tune at all, and why did a run fail or train badly?

The advisor (rule-based, no LLM needed):

- :mod:`~workbench.advise.questions`: the seven questions and the checked answers
- :mod:`~workbench.advise.options`: what it can recommend (prompting, RAG, SFT with LoRA, QLoRA or in full, DPO)
- :mod:`~workbench.advise.evidence`: the published results its estimates rest on
- :mod:`~workbench.advise.starter`: the starter run config for a fine-tuning recommendation
- :mod:`~workbench.advise.advisor`: :func:`advise` puts them together; :func:`deeper_advice` asks an LLM

The run diagnosis:

- :mod:`~workbench.advise.diagnosis`: a :class:`Diagnosis`, and the causes and fixes shared below
- :mod:`~workbench.advise.patterns`: known failures matched in error text
- :mod:`~workbench.advise.metric_checks`: divergence, overfitting, a flat loss, a train/eval gap in metrics
- :mod:`~workbench.advise.diagnose`: :func:`diagnose_text`, :func:`diagnose_run`, :func:`llm_diagnosis`
"""

from workbench.advise.advisor import Advice, advise, deeper_advice
from workbench.advise.diagnose import diagnose_run, diagnose_text, llm_diagnosis, run_text
from workbench.advise.diagnosis import Diagnosis
from workbench.advise.options import RECOMMENDATIONS, Recommendation
from workbench.advise.questions import QUESTIONS, QUESTIONS_BY_ID, Answers, Question

__all__ = [
    "QUESTIONS",
    "QUESTIONS_BY_ID",
    "RECOMMENDATIONS",
    "Advice",
    "Answers",
    "Diagnosis",
    "Question",
    "Recommendation",
    "advise",
    "deeper_advice",
    "diagnose_run",
    "diagnose_text",
    "llm_diagnosis",
    "run_text",
]
