-- -------------------------------------------------------------------------------------------------
-- The Nexmark source tables, one topic each.
-- -------------------------------------------------------------------------------------------------
-- The Flink Nexmark project (nexmark-flink/src/main/resources/queries/ddl_kafka.sql) reads one
-- topic `nexmark` of rows (event_type, person ROW<...>, auction ROW<...>, bid ROW<...>) with a
-- computed `dateTime` and `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`, and
-- ddl_views.sql makes the views person, auction and bid from it. Here the generator writes the
-- three kinds of events to three topics, so the three tables are declared directly, with the
-- same columns, the same rowtime column and the same watermark delay.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE person (
    id  BIGINT,
    name  VARCHAR,
    emailAddress  VARCHAR,
    creditCard  VARCHAR,
    city  VARCHAR,
    state  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'person',
    'scan.startup.mode' = 'earliest-offset',
    'value.format' = 'json'
);

CREATE TABLE auction (
    id  BIGINT,
    itemName  VARCHAR,
    description  VARCHAR,
    initialBid  BIGINT,
    reserve  BIGINT,
    `dateTime`  TIMESTAMP(3),
    expires  TIMESTAMP(3),
    seller  BIGINT,
    category  BIGINT,
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'auction',
    'scan.startup.mode' = 'earliest-offset',
    'value.format' = 'json'
);

CREATE TABLE bid (
    auction  BIGINT,
    bidder  BIGINT,
    price  BIGINT,
    channel  VARCHAR,
    url  VARCHAR,
    `dateTime`  TIMESTAMP(3),
    extra  VARCHAR,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'bid',
    'scan.startup.mode' = 'earliest-offset',
    'value.format' = 'json'
);
