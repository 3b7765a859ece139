"""Governance: who approved a model, on what evidence, and is it still fit to serve.

evaluations.py  offline evaluation records (metrics, slices, baseline), append-only
approvals.py    approval requests and decisions, bound to the evidence, with separation
                of duties
policies.py     policies as code (YAML), checked on deploy, rollout start and promote
policy_spec.py  the policy language: parsing and validation
policy_checks.py  what each policy check decides, with its reason
card.py         the model card, generated from the records
testscore.py    the ML Test Score (Breck et al. 2017): automatic where slipway holds the
                evidence, attested by a person otherwise
inventory.py    the model inventory: owners, risk, deployments, reviews, test score
retention.py    purging prediction records and quarantined rows past retention, legal hold
"""
