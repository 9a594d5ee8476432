-- Stripe customers: each row a donor. A customer whose metadata says do_not_contact (how this
-- organization's staff mark it in Stripe) opts out of email, mail and phone.
SELECT
    r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id, r.source_updated_at,
    r.entity AS object_entity, r.source_id AS object_id,
    NULL::text AS skip_reason,
    NULL::text AS linked_source,
    NULL::text AS linked_gift_id,
    NULL::text AS source_donor_id,
    NULL::text AS encoding_errors,
    coalesce(cu.id, r.source_id) AS donor_source_id,
    cu.name AS full_name,
    cu.email AS email,
    cu.phone AS phone,
    ad.line1 AS address_line1,
    ad.line2 AS address_line2,
    ad.city AS city,
    ad.state AS region,
    ad.postal_code AS postal_code,
    ad.country AS country,
    CASE WHEN md.do_not_contact = 'true' THEN 'true' END AS email_opt_out,
    CASE WHEN md.do_not_contact = 'true' THEN 'true' END AS do_not_mail,
    CASE WHEN md.do_not_contact = 'true' THEN 'true' END AS do_not_call
FROM raw.records r
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(r.payload)) AS cu (
    id text, name text, email text, phone text, address jsonb, metadata jsonb
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(cu.address)) AS ad (
    line1 text, line2 text, city text, state text, postal_code text, country text
) ON true
LEFT JOIN LATERAL jsonb_to_record(staging.as_object(cu.metadata)) AS md (do_not_contact text) ON true
WHERE r.source = 'stripe' AND r.entity = 'customer' AND {scope}
