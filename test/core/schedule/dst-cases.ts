/**
 * Daylight-saving transitions of 2027, fire by fire, shared by the cron tests (Schedule.next) and
 * the scheduler tests (the same fires on the injected clock). Each expected list was worked out by
 * hand from the zone's offsets on either side of the transition (SPEC §2, cronie's rule):
 * wildcard jobs fire at every instant whose local reading matches; fixed-time jobs fire once per
 * wall time, at the jump when it falls in a gap, on the first pass when it falls in a fold.
 */
export interface DstCase {
  zone: string;
  transition: 'fall back' | 'spring forward';
  /** Why the expected list looks as it does, in local time. */
  note: string;
  expr: string;
  kind: 'wildcard' | 'fixed-time';
  /** Fires strictly after this instant... */
  from: string;
  /** ...are these, in order. */
  fires: string[];
}

const z = (s: string): string => `${s}.000Z`;

export const DST_CASES: readonly DstCase[] = [
  // America/New_York falls back 2027-11-07 06:00Z: 01:59:59 EDT -> 01:00:00 EST, 01:xx twice.
  {
    zone: 'America/New_York',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-11-07T04:40:00Z',
    note: '01:00 and 01:30 EDT, then 01:00 and 01:30 EST again, then 02:00 EST',
    fires: ['2027-11-07T05:00:00', '2027-11-07T05:30:00', '2027-11-07T06:00:00', '2027-11-07T06:30:00', '2027-11-07T07:00:00'].map(z),
  },
  {
    zone: 'America/New_York',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '0 * * * *',
    from: '2027-11-07T04:40:00Z',
    note: '01:00 EDT, 01:00 EST, 02:00 EST: every real hour',
    fires: ['2027-11-07T05:00:00', '2027-11-07T06:00:00', '2027-11-07T07:00:00', '2027-11-07T08:00:00'].map(z),
  },
  {
    zone: 'America/New_York',
    transition: 'fall back',
    kind: 'fixed-time',
    expr: '30 1 * * *',
    from: '2027-11-07T04:40:00Z',
    note: '01:30 EDT only, not 01:30 EST again; next day 01:30 EST',
    fires: ['2027-11-07T05:30:00', '2027-11-08T06:30:00'].map(z),
  },
  // America/New_York springs forward 2027-03-14 07:00Z: 01:59:59 EST -> 03:00:00 EDT, no 02:xx.
  {
    zone: 'America/New_York',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-03-14T05:40:00Z',
    note: '01:00, 01:30 EST, then 03:00 EDT: no 02:00 or 02:30',
    fires: ['2027-03-14T06:00:00', '2027-03-14T06:30:00', '2027-03-14T07:00:00', '2027-03-14T07:30:00'].map(z),
  },
  {
    zone: 'America/New_York',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '*/20 2 * * *',
    from: '2027-03-14T05:40:00Z',
    note: '02:00-02:40 never happen that night; next day 02:00 EDT',
    fires: ['2027-03-15T06:00:00', '2027-03-15T06:20:00'].map(z),
  },
  {
    zone: 'America/New_York',
    transition: 'spring forward',
    kind: 'fixed-time',
    expr: '30 2 * * *',
    from: '2027-03-14T05:40:00Z',
    note: '02:30 does not exist: once at the jump (03:00 EDT); next day 02:30 EDT',
    fires: ['2027-03-14T07:00:00', '2027-03-15T06:30:00'].map(z),
  },
  // Europe/London falls back 2027-10-31 01:00Z: 01:59:59 BST -> 01:00:00 GMT, 01:xx twice.
  {
    zone: 'Europe/London',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-10-30T23:40:00Z',
    note: '01:00, 01:30 BST, 01:00, 01:30 GMT, 02:00 GMT',
    fires: ['2027-10-31T00:00:00', '2027-10-31T00:30:00', '2027-10-31T01:00:00', '2027-10-31T01:30:00', '2027-10-31T02:00:00'].map(z),
  },
  {
    zone: 'Europe/London',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '0 * * * *',
    from: '2027-10-30T23:40:00Z',
    note: '01:00 BST, 01:00 GMT, 02:00 GMT',
    fires: ['2027-10-31T00:00:00', '2027-10-31T01:00:00', '2027-10-31T02:00:00'].map(z),
  },
  {
    zone: 'Europe/London',
    transition: 'fall back',
    kind: 'fixed-time',
    expr: '30 1 * * *',
    from: '2027-10-30T23:40:00Z',
    note: '01:30 BST only; next day 01:30 GMT',
    fires: ['2027-10-31T00:30:00', '2027-11-01T01:30:00'].map(z),
  },
  // Europe/London springs forward 2027-03-28 01:00Z: 00:59:59 GMT -> 02:00:00 BST, no 01:xx.
  {
    zone: 'Europe/London',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-03-27T23:40:00Z',
    note: '00:00, 00:30 GMT, then 02:00 BST: no 01:00 or 01:30',
    fires: ['2027-03-28T00:00:00', '2027-03-28T00:30:00', '2027-03-28T01:00:00', '2027-03-28T01:30:00'].map(z),
  },
  {
    zone: 'Europe/London',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '0 * * * *',
    from: '2027-03-27T23:40:00Z',
    note: '00:00 GMT, 02:00 BST, 03:00 BST',
    fires: ['2027-03-28T00:00:00', '2027-03-28T01:00:00', '2027-03-28T02:00:00'].map(z),
  },
  {
    zone: 'Europe/London',
    transition: 'spring forward',
    kind: 'fixed-time',
    expr: '30 1 * * *',
    from: '2027-03-27T23:40:00Z',
    note: '01:30 does not exist: once at the jump (02:00 BST); next day 01:30 BST',
    fires: ['2027-03-28T01:00:00', '2027-03-29T00:30:00'].map(z),
  },
  // Australia/Lord_Howe (a 30-minute shift) falls back 2027-04-03 15:00Z: 01:59:59 +11 -> 01:30:00 +10:30.
  {
    zone: 'Australia/Lord_Howe',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-04-03T13:40:00Z',
    note: '01:00, 01:30 (+11), 01:30 again (+10:30), 02:00, 02:30: every 30 real minutes',
    fires: ['2027-04-03T14:00:00', '2027-04-03T14:30:00', '2027-04-03T15:00:00', '2027-04-03T15:30:00', '2027-04-03T16:00:00'].map(z),
  },
  {
    zone: 'Australia/Lord_Howe',
    transition: 'fall back',
    kind: 'wildcard',
    expr: '0 * * * *',
    from: '2027-04-03T13:40:00Z',
    note: 'the clock reads 02:00 ninety real minutes after 01:00 that night: no wall time is skipped or run twice',
    fires: ['2027-04-03T14:00:00', '2027-04-03T15:30:00', '2027-04-03T16:30:00'].map(z),
  },
  {
    zone: 'Australia/Lord_Howe',
    transition: 'fall back',
    kind: 'fixed-time',
    expr: '45 1 * * *',
    from: '2027-04-03T13:40:00Z',
    note: '01:45 (+11) only, not 01:45 (+10:30) again; next day 01:45 +10:30',
    fires: ['2027-04-03T14:45:00', '2027-04-04T15:15:00'].map(z),
  },
  // Australia/Lord_Howe springs forward 2027-10-02 15:30Z: 01:59:59 +10:30 -> 02:30:00 +11, no 02:00-02:29.
  {
    zone: 'Australia/Lord_Howe',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '*/30 * * * *',
    from: '2027-10-02T14:10:00Z',
    note: '01:00, 01:30 (+10:30), then 02:30, 03:00 (+11): no 02:00',
    fires: ['2027-10-02T14:30:00', '2027-10-02T15:00:00', '2027-10-02T15:30:00', '2027-10-02T16:00:00'].map(z),
  },
  {
    zone: 'Australia/Lord_Howe',
    transition: 'spring forward',
    kind: 'wildcard',
    expr: '*/10 2 * * *',
    from: '2027-10-02T14:10:00Z',
    note: '02:00-02:20 never happen; 02:30, 02:40, 02:50 do; next day 02:00',
    fires: ['2027-10-02T15:30:00', '2027-10-02T15:40:00', '2027-10-02T15:50:00', '2027-10-03T15:00:00'].map(z),
  },
  {
    zone: 'Australia/Lord_Howe',
    transition: 'spring forward',
    kind: 'fixed-time',
    expr: '15 2 * * *',
    from: '2027-10-02T14:10:00Z',
    note: '02:15 does not exist: once at the jump (02:30 +11); next day 02:15 +11',
    fires: ['2027-10-02T15:30:00', '2027-10-03T15:15:00'].map(z),
  },
];
