-- Donorbox donations: each row a gift and its donor (embedded). The form's custom questions carry
-- the dedication ("Dedicate this donation") and contact preferences.
SELECT
    r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id, r.source_updated_at,
    r.entity AS object_entity, r.source_id AS object_id,
    NULL::text AS skip_reason,
    NULL::text AS linked_source,
    NULL::text AS linked_gift_id,
    dn.id AS source_donor_id,
    NULL::text AS encoding_errors,
    dn.id AS donor_source_id,
    dn.name AS full_name,
    dn.first_name AS first_name,
    dn.last_name AS last_name,
    d.donating_company AS organization_name,
    dn.email AS email,
    dn.phone AS phone,
    dn.address AS address_line1,
    dn.address_line_2 AS address_line2,
    dn.city AS city,
    dn.state AS region,
    dn.zip_code AS postal_code,
    dn.country AS country,
    q.consent_text,
    d.join_mailing_list AS email_opt_in,
    d.id AS gift_source_id,
    staging.json_decimal_text(d.amount) AS amount,
    d.currency AS currency,
    staging.json_decimal_text(d.processing_fee) AS fee_amount,
    d.donation_date AS gift_at,
    d.status AS status,
    staging.json_decimal_text(d.amount_refunded) AS refunded_amount,
    CASE WHEN lower(d.donation_type) = 'stripe' THEN 'card' ELSE d.donation_type END AS payment_method,
    lower(d.donation_type) AS processor,
    coalesce(d.stripe_charge_id, d.paypal_transaction_id) AS processor_transaction_id,
    d.anonymous_donation AS is_anonymous,
    d.recurring AS is_recurring,
    d.plan_id AS recurring_source_id,
    d.designation AS designation,
    cp.name AS campaign,
    d.utm_source AS utm_source,
    d.utm_medium AS utm_medium,
    d.utm_campaign AS utm_campaign,
    d.utm_term AS utm_term,
    d.utm_content AS utm_content,
    q.tribute_text,
    d.comment AS comment
FROM raw.records r
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(r.payload)) AS d (
    id text, campaign jsonb, donor jsonb, amount jsonb, currency text, processing_fee jsonb,
    donation_date text, status text, amount_refunded jsonb, donation_type text,
    stripe_charge_id text, paypal_transaction_id text, anonymous_donation text, recurring text,
    plan_id text, designation text, join_mailing_list text, comment text, donating_company text,
    questions jsonb, utm_source text, utm_medium text, utm_campaign text, utm_term text,
    utm_content text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(d.donor)) AS dn (
    id text, name text, first_name text, last_name text, email text, phone text, address text,
    address_line_2 text, city text, state text, zip_code text, country text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(d.campaign)) AS cp (name text) ON true
LEFT JOIN LATERAL (
    SELECT max(a.answer) FILTER (WHERE a.question ILIKE 'contact preferences%') AS consent_text,
           max(a.answer) FILTER (WHERE a.question ILIKE 'dedicat%' OR a.question ILIKE 'tribute%') AS tribute_text
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d.questions) = 'array' THEN d.questions END) AS e (item)
    CROSS JOIN LATERAL jsonb_to_record(staging.as_object(e.item)) AS a (question text, answer text)
) q ON true
WHERE r.source = 'donorbox' AND r.entity = 'donation' AND {scope}
