-- Classy (GoFundMe Pro) transactions: each row a gift and its supporter. Amounts are JSON numbers
-- (staging.json_text drops trailing zeros: 500.0 yen is 500). Classy names campaign and
-- designation by id only in a transaction; the ids are kept as their text.
SELECT
    r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id, r.source_updated_at,
    r.entity AS object_entity, r.source_id AS object_id,
    NULL::text AS skip_reason,
    NULL::text AS linked_source,
    NULL::text AS linked_gift_id,
    t.supporter_id AS source_donor_id,
    NULL::text AS encoding_errors,
    t.supporter_id AS donor_source_id,
    t.member_name AS full_name,
    t.billing_first_name AS first_name,
    t.billing_last_name AS last_name,
    t.member_email_address AS email,
    t.member_phone AS phone,
    t.billing_address1 AS address_line1,
    t.billing_address2 AS address_line2,
    t.billing_city AS city,
    t.billing_state AS region,
    t.billing_postal_code AS postal_code,
    t.billing_country AS country,
    md.contact_preferences AS consent_text,
    t.id AS gift_source_id,
    staging.json_decimal_text(t.total_gross_amount) AS amount,
    t.currency_code AS currency,
    staging.json_decimal_text(t.fees_amount) AS fee_amount,
    t.purchased_at AS gift_at,
    t.status AS status,
    t.refunded_at AS refunded_at,
    t.payment_method AS payment_method,
    lower(t.payment_gateway) AS processor,
    t.is_anonymous AS is_anonymous,
    t.frequency AS is_recurring,
    t.recurring_donation_plan_id AS recurring_source_id,
    t.frequency AS recurring_interval,
    t.designation_id AS designation,
    t.campaign_id AS campaign,
    utm.source AS utm_source,
    utm.medium AS utm_medium,
    utm.campaign AS utm_campaign,
    utm.term AS utm_term,
    utm.content AS utm_content,
    md.landing_url AS landing_url,
    dd.type AS tribute_type,
    dd.name AS tribute_name,
    t.comment AS comment
FROM raw.records r
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(r.payload)) AS t (
    id text, status text, total_gross_amount jsonb, fees_amount jsonb, currency_code text,
    purchased_at text, refunded_at text, member_email_address text, member_name text,
    member_phone text, billing_first_name text, billing_last_name text, billing_address1 text,
    billing_address2 text, billing_city text, billing_state text, billing_postal_code text,
    billing_country text, supporter_id text, campaign_id text, designation_id text,
    recurring_donation_plan_id text, frequency text, payment_method text, payment_gateway text,
    is_anonymous text, comment text, dedication jsonb, utm jsonb, metadata jsonb
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(t.utm)) AS utm (
    source text, medium text, campaign text, term text, content text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(t.metadata)) AS md (
    landing_url text, contact_preferences text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(t.dedication)) AS dd (type text, name text) ON true
WHERE r.source = 'classy' AND r.entity = 'transaction' AND {scope}
