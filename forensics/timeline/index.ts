/**
 * What ran on a device between two times, from an incident bundle.
 */
export {
  buildTimeline, chooseInterval, DEFAULT_TIMELINE_BUCKETS, MAX_TIMELINE_BUCKETS, MAX_TIMELINE_DECISIONS,
  type Timeline, type TimelineModel, type TimelineOptions
} from './build-timeline.js'
