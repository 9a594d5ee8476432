-- 0011_match_models: match weights refitted from the review queue's decisions (issue 5).
--
-- The dedup rules (include/mappings/dedup.yaml) hold prior m and u per comparison level. Each
-- decided review is a labelled pair (approve: same donor, reject: different donors);
-- `donor-sync review refit` and donors_nightly fit m from those labels on top of the priors and
-- store the result here. Resolve scores with the active model of its rules version, so a change
-- to the rules file (new comparisons or levels) falls back to the file's priors until refitted.
CREATE TABLE core.match_models (
    model_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rules_version    text NOT NULL,                -- ResolveRules.version the model fits
    -- Per comparison (in the rules' order): {"name": ..., "m": [...], "u": [...]} with one
    -- probability per level, the Null level first (unused).
    comparisons      jsonb NOT NULL CHECK (jsonb_typeof(comparisons) = 'array'),
    prior            double precision NOT NULL CHECK (prior > 0 AND prior < 1),
    label_matches    integer NOT NULL CHECK (label_matches >= 0),
    label_non_matches integer NOT NULL CHECK (label_non_matches >= 0),
    last_review_id   bigint,                       -- newest decided review among the labels
    -- Agreement of the model with the labels it was fitted on, before and after (share of
    -- approved pairs at or above the review band, rejected pairs below the merge band).
    agreement_before double precision,
    agreement_after  double precision,
    active           boolean NOT NULL DEFAULT false,
    fitted_by        text NOT NULL,
    fitted_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.match_models IS 'Match weights fitted from review decisions, one active per dedup rules version.';
CREATE UNIQUE INDEX match_models_active_key ON core.match_models (rules_version) WHERE active;
