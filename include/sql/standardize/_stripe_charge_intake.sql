-- Intake columns of one Stripe charge object, shared by stripe_charge.sql (the charge as listed)
-- and stripe_event.sql (the charge inside a charge.* event: a later version of it).
-- Reads from the CTE "charges" (raw record columns, object identity, charge jsonb, skip_reason,
-- event_type, event_created). Every value is text as Stripe wrote it.
--
-- Donor: the billing details are the donor of the charge; its source id is the Stripe customer
-- when there is one, else the charge id (a guest checkout). A charge with neither a billing name
-- nor an email carries no donor (the customer record, if any, does).
-- Link: a charge made by Donorbox or Classy names their gift in its metadata.
-- Amounts are Stripe's integer minor units; they are passed as their JSON text, so a value that is
-- not a JSON number (a string such as "25.00") stays quoted and the amount parser rejects it.
SELECT
    c.raw_record_id,
    c.batch_id,
    c.source,
    c.entity,
    c.source_id,
    c.source_updated_at,
    c.object_entity,
    c.object_id,
    c.skip_reason,
    CASE WHEN md.classy_transaction_id IS NOT NULL THEN 'classy'
         WHEN md.donorbox_donation_id IS NOT NULL THEN 'donorbox' END AS linked_source,
    coalesce(md.classy_transaction_id, md.donorbox_donation_id) AS linked_gift_id,
    coalesce(ch.customer, CASE WHEN coalesce(bd.name, bd.email, ch.receipt_email) IS NOT NULL THEN ch.id END)
        AS source_donor_id,
    NULL::text AS encoding_errors,
    CASE WHEN coalesce(bd.name, bd.email, ch.receipt_email) IS NOT NULL THEN coalesce(ch.customer, ch.id) END
        AS donor_source_id,
    bd.name AS full_name,
    coalesce(bd.email, ch.receipt_email) AS email,
    bd.phone AS phone,
    ad.line1 AS address_line1,
    ad.line2 AS address_line2,
    ad.city AS city,
    ad.state AS region,
    ad.postal_code AS postal_code,
    ad.country AS country,
    md.contact_preferences AS consent_text,
    ch.id AS gift_source_id,
    ch.amount::text AS amount_minor,
    ch.currency AS currency,
    ch.created AS gift_at,
    ch.status AS status,
    ch.amount_refunded::text AS refunded_amount_minor,
    CASE WHEN c.event_type = 'charge.refunded' THEN c.event_created END AS refunded_at,
    ch.disputed AS disputed,
    pm.type AS payment_method,
    'stripe' AS processor,
    ch.id AS processor_transaction_id,
    ch.livemode AS livemode,
    pm.card ->> 'last4' AS card_last4,
    CASE WHEN ch.invoice IS NOT NULL THEN 'true' ELSE 'false' END AS is_recurring,
    md.designation AS designation,
    md.campaign AS campaign,
    md.landing_url AS landing_url,
    md.tribute_type AS tribute_type,
    md.tribute_name AS tribute_name,
    ch.description AS comment
FROM charges c
LEFT JOIN LATERAL jsonb_to_record(c.charge) AS ch (
    id text, amount jsonb, amount_refunded jsonb, currency text, created text, status text,
    disputed text, livemode text, customer text, description text, invoice text,
    receipt_email text, metadata jsonb, billing_details jsonb, payment_method_details jsonb
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(ch.billing_details)) AS bd (
    name text, email text, phone text, address jsonb
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(bd.address)) AS ad (
    line1 text, line2 text, city text, state text, postal_code text, country text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(ch.metadata)) AS md (
    campaign text, designation text, landing_url text, tribute_type text, tribute_name text,
    contact_preferences text, donorbox_donation_id text, classy_transaction_id text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(ch.payment_method_details)) AS pm (
    type text, card jsonb
) ON true
