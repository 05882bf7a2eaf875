<?php
/**
 * Plugin Name: AuraReels Social Bridge
 * Description: Forwards /wp-json/aurareels/v1/social/* to the AuraReels Social Bridge service and creates the social tables. Works as a must-use plugin (drop into wp-content/mu-plugins/) or as a regular plugin.
 * Version:     1.0.0
 * Requires PHP: 7.4
 * Requires at least: 5.6
 * License:     GPL-2.0-or-later
 *
 * Configuration (wp-config.php):
 *
 *     define( 'AURAREELS_BRIDGE_URL', 'http://127.0.0.1:8080' );   // the bridge's base URL
 *     define( 'AURAREELS_BRIDGE_TIMEOUT', 60 );                     // optional, seconds
 *
 * The bridge authenticates every request itself: it checks the same WordPress JWT the site's JWT
 * plugin issued (same secret, `iss` = the site URL). So every route here is public on the WordPress
 * side (`permission_callback => '__return_true'`) and only forwards. The bridge's `/internal/...`
 * routes are deliberately not registered: WordPress answers them with its own 404 (rest_no_route).
 *
 * Forwarded to the bridge: method, path (kept as /wp-json/aurareels/v1/social/...), query string,
 * raw body, Content-Type, Authorization, Idempotency-Key and the webhook signature headers.
 * Returned unchanged: status, body (byte for byte, JSON is not re-encoded), Content-Type, Location
 * and a few other response headers. A bridge that cannot be reached answers 503
 * {"success":false,"code":"bridge_unavailable",...}; a site without AURAREELS_BRIDGE_URL answers
 * 503 {"success":false,"code":"bridge_not_configured",...}.
 *
 * Tables: activating the plugin (or, for a must-use plugin, the first request after an update of
 * this file) creates {prefix}aurareels_social_accounts, _posts and _analytics with WordPress's
 * dbDelta, in the bridge's current shape (platform ENUMs include 'twitter' and 'linkedin'), and the
 * user's {prefix}aurareels_social_templates and _hashtag_groups as the bridge's migration 0009 does.
 * dbDelta only adds: columns, indexes and ENUM values the bridge's own migrations added are kept.
 * The two FOREIGN KEY clauses of the original DDL are not understood by dbDelta; they are added
 * afterwards with ALTER TABLE, only when absent.
 */

defined( 'ABSPATH' ) || exit;

if ( ! function_exists( 'aurareels_social_bridge_activate' ) ) :

	define( 'AURAREELS_SOCIAL_BRIDGE_VERSION', '1.0.0' );
	define( 'AURAREELS_SOCIAL_BRIDGE_SCHEMA', '3' );
	define( 'AURAREELS_SOCIAL_BRIDGE_NAMESPACE', 'aurareels/v1/social' );

	/**
	 * A response whose body goes to the client exactly as the bridge sent it.
	 * `data` holds the decoded JSON (for PHP callers of rest_do_request()); `raw_body` is what is sent.
	 */
	class AuraReels_Social_Bridge_Response extends WP_REST_Response {
		/** @var string */
		public $raw_body = '';
	}

	/**
	 * The routes of the bridge's interface, relative to the namespace, with their methods.
	 * Path parameters are matched loosely so that the bridge, not WordPress, judges them and answers
	 * bad ones in its own error envelope. No /internal route is listed, on purpose.
	 *
	 * @return array<string, string[]>
	 */
	function aurareels_social_bridge_routes() {
		return array(
			'/accounts'                                 => array( 'GET' ),
			'/accounts/connect/(?P<platform>[^/]+)'     => array( 'POST' ),
			'/accounts/links/(?P<link>[^/]+)/confirm'   => array( 'POST' ),
			'/callback/(?P<platform>[^/]+)'             => array( 'GET' ),
			'/accounts/(?P<id>[^/]+)/refresh'           => array( 'POST' ),
			'/accounts/(?P<id>[^/]+)'                   => array( 'DELETE' ),
			'/accounts/(?P<id>[^/]+)/quota'             => array( 'GET' ),
			'/accounts/(?P<id>[^/]+)/options'           => array( 'GET' ),
			'/publish'                                  => array( 'POST' ),
			'/schedule'                                 => array( 'POST' ),
			'/posts'                                    => array( 'GET' ),
			'/posts/(?P<id>[^/]+)'                      => array( 'GET', 'PATCH', 'DELETE' ),
			'/posts/(?P<id>[^/]+)/reschedule'           => array( 'PATCH' ),
			'/posts/(?P<id>[^/]+)/retry'                => array( 'POST' ),
			'/posts/(?P<id>[^/]+)/publish'              => array( 'POST' ),
			'/posts/(?P<id>[^/]+)/schedule'             => array( 'POST' ),
			'/drafts'                                   => array( 'POST' ),
			'/validate'                                 => array( 'POST' ),
			'/platforms'                                => array( 'GET' ),
			'/posts/(?P<id>[^/]+)/analytics'            => array( 'GET' ),
			'/posts/(?P<id>[^/]+)/analytics/refresh'    => array( 'POST' ),
			'/analytics/summary'                        => array( 'GET' ),
			'/analytics/best-times'                     => array( 'GET' ),
			'/templates'                                => array( 'GET', 'POST' ),
			'/templates/(?P<id>[^/]+)'                  => array( 'PATCH', 'DELETE' ),
			'/hashtag-groups'                           => array( 'GET', 'POST' ),
			'/hashtag-groups/(?P<id>[^/]+)'             => array( 'PATCH', 'DELETE' ),
			'/webhooks/tiktok'                          => array( 'POST' ),
			'/webhooks/meta'                            => array( 'GET', 'POST' ),
			'/health'                                   => array( 'GET' ),
			'/openapi\.json'                            => array( 'GET' ),
			'/docs'                                     => array( 'GET' ),
			// The docs page loads its stylesheet and script from docs/static/ (relative URLs).
			'/docs/static/(?P<file>[A-Za-z0-9._-]+)'   => array( 'GET' ),
		);
	}

	/**
	 * Registers every route of the namespace on rest_api_init.
	 */
	function aurareels_social_bridge_register_routes() {
		foreach ( aurareels_social_bridge_routes() as $route => $methods ) {
			register_rest_route(
				AURAREELS_SOCIAL_BRIDGE_NAMESPACE,
				$route,
				array(
					'methods'             => $methods,
					'callback'            => 'aurareels_social_bridge_proxy',
					// The bridge checks the JWT (or the webhook signature) itself.
					'permission_callback' => '__return_true',
				)
			);
		}
	}

	/**
	 * The request's Authorization header, wherever this server setup put it.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return string Empty when absent.
	 */
	function aurareels_social_bridge_authorization( $request ) {
		$value = $request->get_header( 'authorization' );
		if ( is_string( $value ) && '' !== trim( $value ) ) {
			return trim( $value );
		}
		foreach ( array( 'HTTP_AUTHORIZATION', 'REDIRECT_HTTP_AUTHORIZATION' ) as $key ) {
			if ( ! empty( $_SERVER[ $key ] ) && is_string( $_SERVER[ $key ] ) ) {
				return trim( wp_unslash( $_SERVER[ $key ] ) );
			}
		}
		if ( function_exists( 'getallheaders' ) ) {
			$all = getallheaders();
			if ( is_array( $all ) ) {
				foreach ( $all as $name => $header_value ) {
					if ( 'authorization' === strtolower( (string) $name ) && '' !== trim( (string) $header_value ) ) {
						return trim( (string) $header_value );
					}
				}
			}
		}
		return '';
	}

	/**
	 * The raw query string of the incoming request, without WordPress's own `rest_route` parameter
	 * (present when the site has no pretty permalinks).
	 *
	 * @param WP_REST_Request $request The request.
	 * @return string Without the leading '?'; empty when there is none.
	 */
	function aurareels_social_bridge_query_string( $request ) {
		if ( isset( $_SERVER['QUERY_STRING'] ) && is_string( $_SERVER['QUERY_STRING'] ) ) {
			$raw   = wp_unslash( $_SERVER['QUERY_STRING'] );
			$parts = array();
			foreach ( explode( '&', $raw ) as $pair ) {
				if ( '' === $pair ) {
					continue;
				}
				$name = urldecode( strtok( $pair, '=' ) );
				if ( 'rest_route' === $name ) {
					continue;
				}
				$parts[] = $pair;
			}
			return implode( '&', $parts );
		}
		// Called from PHP (rest_do_request): rebuild from the parsed parameters.
		$params = $request->get_query_params();
		unset( $params['rest_route'] );
		return $params ? http_build_query( $params, '', '&', PHP_QUERY_RFC3986 ) : '';
	}

	/**
	 * The bridge URL of this request: same path, same query string.
	 *
	 * @param string          $base    AURAREELS_BRIDGE_URL.
	 * @param WP_REST_Request $request The request.
	 * @return string
	 */
	function aurareels_social_bridge_target_url( $base, $request ) {
		$segments = explode( '/', ltrim( $request->get_route(), '/' ) );
		$path     = '/wp-json/' . implode( '/', array_map( 'rawurlencode', array_map( 'rawurldecode', $segments ) ) );
		$query    = aurareels_social_bridge_query_string( $request );
		return rtrim( $base, '/' ) . $path . ( '' !== $query ? '?' . $query : '' );
	}

	/**
	 * A response in the bridge's error envelope.
	 *
	 * @param int    $status  HTTP status.
	 * @param string $code    snake_case code.
	 * @param string $message One human sentence.
	 * @return AuraReels_Social_Bridge_Response
	 */
	function aurareels_social_bridge_error( $status, $code, $message ) {
		$data     = array(
			'success' => false,
			'code'    => $code,
			'message' => $message,
		);
		$response = new AuraReels_Social_Bridge_Response( $data, $status );
		$response->raw_body = wp_json_encode( $data );
		$response->header( 'Content-Type', 'application/json; charset=utf-8' );
		$response->header( 'Cache-Control', 'no-store' );
		if ( 503 === $status ) {
			$response->header( 'Retry-After', '5' );
		}
		return $response;
	}

	/**
	 * The route callback: forwards the request to the bridge and hands back its answer unchanged.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return AuraReels_Social_Bridge_Response
	 */
	function aurareels_social_bridge_proxy( WP_REST_Request $request ) {
		$base = defined( 'AURAREELS_BRIDGE_URL' ) ? trim( (string) constant( 'AURAREELS_BRIDGE_URL' ) ) : '';
		if ( '' === $base ) {
			return aurareels_social_bridge_error(
				503,
				'bridge_not_configured',
				'The social publishing service is not configured on this site (AURAREELS_BRIDGE_URL is not defined).'
			);
		}

		$method  = strtoupper( $request->get_method() );
		$headers = array();

		$authorization = aurareels_social_bridge_authorization( $request );
		if ( '' !== $authorization ) {
			$headers['Authorization'] = $authorization;
		}
		$passed = array(
			'content_type'        => 'Content-Type',
			'accept'              => 'Accept',
			'idempotency_key'     => 'Idempotency-Key',
			'tiktok_signature'    => 'TikTok-Signature',
			'x_hub_signature_256' => 'X-Hub-Signature-256',
			'accept_language'     => 'Accept-Language',
			'x_request_id'        => 'X-Request-Id',
		);
		foreach ( $passed as $key => $name ) {
			$value = $request->get_header( $key );
			if ( is_string( $value ) && '' !== $value ) {
				$headers[ $name ] = $value;
			}
		}
		if ( ! empty( $_SERVER['REMOTE_ADDR'] ) ) {
			$forwarded = $request->get_header( 'x_forwarded_for' );
			$client    = sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) );
			$headers['X-Forwarded-For'] = ( is_string( $forwarded ) && '' !== $forwarded ) ? $forwarded . ', ' . $client : $client;
		}

		$timeout = defined( 'AURAREELS_BRIDGE_TIMEOUT' ) ? (float) constant( 'AURAREELS_BRIDGE_TIMEOUT' ) : 60.0;
		$args    = array(
			'method'      => $method,
			'headers'     => $headers,
			'timeout'     => $timeout > 0 ? $timeout : 60.0,
			'redirection' => 0,
			'httpversion' => '1.1',
			'blocking'    => true,
			'decompress'  => true,
		);
		$body = $request->get_body();
		if ( is_string( $body ) && '' !== $body ) {
			$args['body'] = $body;
		}

		$answer = wp_remote_request( aurareels_social_bridge_target_url( $base, $request ), $args );
		if ( is_wp_error( $answer ) ) {
			// For the site's error log only; never sent to the client.
			error_log( 'AuraReels social bridge unreachable: ' . $answer->get_error_message() ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions
			return aurareels_social_bridge_error(
				503,
				'bridge_unavailable',
				'The social publishing service is not reachable right now; try again shortly.'
			);
		}

		$status       = (int) wp_remote_retrieve_response_code( $answer );
		$raw          = (string) wp_remote_retrieve_body( $answer );
		$content_type = (string) wp_remote_retrieve_header( $answer, 'content-type' );
		$is_json      = false !== stripos( $content_type, 'json' );

		// A gateway in front of the bridge answering for a bridge that is down (not the bridge's
		// own JSON answers, which pass unchanged).
		if ( $status < 100 || ( in_array( $status, array( 502, 503, 504 ), true ) && ! $is_json ) ) {
			return aurareels_social_bridge_error(
				503,
				'bridge_unavailable',
				'The social publishing service is not reachable right now; try again shortly.'
			);
		}

		$data = $raw;
		if ( $is_json && '' !== $raw ) {
			$decoded = json_decode( $raw, true );
			if ( null !== $decoded || 'null' === trim( $raw ) ) {
				$data = $decoded;
			}
		}
		$response = new AuraReels_Social_Bridge_Response( $data, $status );
		$response->raw_body = $raw;

		$kept = array( 'content-type', 'location', 'retry-after', 'www-authenticate', 'allow', 'cache-control', 'etag', 'last-modified', 'x-request-id', 'content-disposition' );
		foreach ( $kept as $name ) {
			$value = wp_remote_retrieve_header( $answer, $name );
			if ( is_array( $value ) ) {
				$value = implode( ', ', $value );
			}
			if ( is_string( $value ) && '' !== $value ) {
				$response->header( aurareels_social_bridge_header_case( $name ), $value );
			}
		}
		if ( '' === $content_type ) {
			$response->header( 'Content-Type', 'application/octet-stream' );
		}
		return $response;
	}

	/**
	 * content-type -> Content-Type, www-authenticate -> WWW-Authenticate.
	 *
	 * @param string $name Lower-case header name.
	 * @return string
	 */
	function aurareels_social_bridge_header_case( $name ) {
		if ( 'www-authenticate' === $name ) {
			return 'WWW-Authenticate';
		}
		return implode( '-', array_map( 'ucfirst', explode( '-', $name ) ) );
	}

	/**
	 * Sends a proxied body as it is, so WordPress does not JSON-encode it a second time.
	 *
	 * @param bool             $served  Whether another filter already served the request.
	 * @param WP_HTTP_Response $result  The response.
	 * @param WP_REST_Request  $request The request.
	 * @return bool
	 */
	function aurareels_social_bridge_serve_raw( $served, $result, $request ) {
		if ( $served || ! ( $result instanceof AuraReels_Social_Bridge_Response ) ) {
			return $served;
		}
		if ( 'HEAD' !== strtoupper( $request->get_method() ) ) {
			echo $result->raw_body; // phpcs:ignore WordPress.Security.EscapeOutput -- the bridge's own body, passed through unchanged.
		}
		return true;
	}

	/**
	 * A dashboard on another origin sends Idempotency-Key (allowed in CORS preflights) and may read
	 * Retry-After and Location.
	 *
	 * @param string[] $headers Header names.
	 * @return string[]
	 */
	function aurareels_social_bridge_cors_allow( $headers ) {
		$headers[] = 'Idempotency-Key';
		return array_values( array_unique( $headers ) );
	}

	/**
	 * @param string[] $headers Header names.
	 * @return string[]
	 */
	function aurareels_social_bridge_cors_expose( $headers ) {
		$headers[] = 'Retry-After';
		$headers[] = 'Location';
		return array_values( array_unique( $headers ) );
	}

	/**
	 * No JSONP on the proxied routes. WordPress answers `?_jsonp=cb` on any REST route with
	 * JavaScript that calls `cb(...)` with the answer: a page on another site could include the URL in a
	 * <script> tag and read a signed-in visitor's answers from the site's origin. WordPress then
	 * refuses the call with 400 rest_callback_disabled instead. Other namespaces keep the site's setting.
	 *
	 * @param bool $enabled Whether JSONP is enabled (the site's setting so far).
	 * @return bool
	 */
	function aurareels_social_bridge_jsonp_enabled( $enabled ) {
		$route = '';
		if ( isset( $GLOBALS['wp'] ) && is_object( $GLOBALS['wp'] ) && isset( $GLOBALS['wp']->query_vars['rest_route'] ) ) {
			$route = (string) $GLOBALS['wp']->query_vars['rest_route'];
		} elseif ( isset( $_GET['rest_route'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification -- read only, to name the route.
			$route = (string) wp_unslash( $_GET['rest_route'] ); // phpcs:ignore WordPress.Security.NonceVerification,WordPress.Security.ValidatedSanitizedInput
		}
		// WordPress matches routes without regard to case and tolerates extra leading slashes.
		if ( preg_match( '#^/*' . preg_quote( AURAREELS_SOCIAL_BRIDGE_NAMESPACE, '#' ) . '(/|$)#i', $route ) ) {
			return false;
		}
		return $enabled;
	}

	/**
	 * WordPress checks a request before its callback runs (it parses a JSON body and answers bad JSON
	 * with its own rest_invalid_json). On these routes the bridge is the judge, in its own envelope:
	 * the request goes on to the proxy whatever WordPress thought of it.
	 *
	 * @param WP_REST_Response|WP_Error|mixed $response Result so far (a WP_Error to stop here).
	 * @param array                           $handler  The matched route handler.
	 * @return mixed
	 */
	function aurareels_social_bridge_before_callbacks( $response, $handler ) {
		if ( is_wp_error( $response ) && isset( $handler['callback'] ) && 'aurareels_social_bridge_proxy' === $handler['callback'] ) {
			return null;
		}
		return $response;
	}

	// ---------------------------------------------------------------------------------------------
	// Tables.

	/**
	 * The ENUM values of a column as they are in the database now, or null when there is none.
	 *
	 * @param string $table  Table name.
	 * @param string $column Column name.
	 * @return string[]|null
	 */
	function aurareels_social_bridge_enum_values( $table, $column ) {
		global $wpdb;
		if ( $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $table ) ) ) !== $table ) {
			return null;
		}
		$row = $wpdb->get_row( $wpdb->prepare( 'SHOW COLUMNS FROM `' . esc_sql( $table ) . '` LIKE %s', $column ) );
		if ( ! $row || ! preg_match( '/^enum\((.*)\)$/i', (string) $row->Type, $m ) ) {
			return null;
		}
		preg_match_all( "/'((?:[^'\\\\]|\\\\.|'')*)'/", $m[1], $values );
		return array_map(
			static function ( $v ) {
				return str_replace( "''", "'", $v );
			},
			$values[1]
		);
	}

	/**
	 * An ENUM type that keeps every value already in the database (values appended by the bridge's
	 * migrations stay) and appends ours that are missing, in dbDelta's comparable spelling.
	 *
	 * @param string   $table  Table name.
	 * @param string   $column Column name.
	 * @param string[] $ours   This plugin's values, in order.
	 * @return string
	 */
	function aurareels_social_bridge_enum_type( $table, $column, $ours ) {
		$existing = aurareels_social_bridge_enum_values( $table, $column );
		$values   = $existing ? $existing : array();
		foreach ( $ours as $value ) {
			if ( ! in_array( $value, $values, true ) ) {
				$values[] = $value;
			}
		}
		$quoted = array_map(
			static function ( $v ) {
				return "'" . str_replace( "'", "''", $v ) . "'";
			},
			$values
		);
		return 'enum(' . implode( ',', $quoted ) . ')';
	}

	/**
	 * The CREATE TABLE statements in dbDelta's format: one field per line, two spaces after
	 * PRIMARY KEY, KEY rather than INDEX, integer display widths and ENUMs spelled as MySQL/MariaDB
	 * report them (so dbDelta sees nothing to change on tables the bridge's migrate created), and
	 * no FOREIGN KEY clause (added by aurareels_social_bridge_add_foreign_keys()). Table names are
	 * not back-quoted on the CREATE TABLE line: dbDelta keys its report by the name as written.
	 *
	 * @return string[] table => statement
	 */
	function aurareels_social_bridge_schema() {
		global $wpdb;
		$accounts  = $wpdb->prefix . 'aurareels_social_accounts';
		$posts     = $wpdb->prefix . 'aurareels_social_posts';
		$analytics = $wpdb->prefix . 'aurareels_social_analytics';
		$templates = $wpdb->prefix . 'aurareels_social_templates';
		$groups    = $wpdb->prefix . 'aurareels_social_hashtag_groups';
		$platforms = array( 'tiktok', 'instagram', 'facebook', 'youtube', 'twitter', 'linkedin' );
		$statuses  = array( 'draft', 'scheduled', 'publishing', 'published', 'failed', 'cancelled' );
		$tail      = ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;';

		$account_platform = aurareels_social_bridge_enum_type( $accounts, 'platform', $platforms );
		$post_platform    = aurareels_social_bridge_enum_type( $posts, 'platform', $platforms );
		$post_status      = aurareels_social_bridge_enum_type( $posts, 'status', $statuses );

		$sql = array();

		$sql[ $accounts ] = "CREATE TABLE $accounts (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `platform` $account_platform NOT NULL,
  `account_id` varchar(255) NOT NULL COMMENT 'Platform-specific user ID',
  `account_name` varchar(255) NOT NULL COMMENT 'Display name or username',
  `account_username` varchar(255) DEFAULT NULL COMMENT '@username',
  `account_email` varchar(255) DEFAULT NULL,
  `profile_picture_url` text DEFAULT NULL,
  `access_token` text NOT NULL COMMENT 'Encrypted OAuth access token',
  `refresh_token` text DEFAULT NULL COMMENT 'Encrypted OAuth refresh token',
  `token_expires_at` datetime DEFAULT NULL COMMENT 'When access token expires',
  `token_scope` text DEFAULT NULL COMMENT 'OAuth scopes granted',
  `is_active` tinyint(1) DEFAULT 1 COMMENT '1=active, 0=disconnected',
  `last_token_refresh` datetime DEFAULT NULL,
  `metadata` longtext DEFAULT NULL COMMENT 'JSON: platform-specific data',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY  (`id`),
  UNIQUE KEY `unique_platform_account` (`platform`,`account_id`,`wp_user_id`),
  KEY `user_platform` (`wp_user_id`,`platform`),
  KEY `active_accounts` (`is_active`,`platform`)
$tail";

		$sql[ $posts ] = "CREATE TABLE $posts (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `video_job_id` varchar(255) NOT NULL COMMENT 'FK to wp_chavetas_video_uploader.job_id',
  `social_account_id` bigint(20) unsigned NOT NULL COMMENT 'FK to wp_aurareels_social_accounts.id',
  `platform` $post_platform NOT NULL,
  `status` $post_status DEFAULT 'draft',
  `scheduled_at` datetime DEFAULT NULL COMMENT 'When to publish (NULL = immediate)',
  `published_at` datetime DEFAULT NULL COMMENT 'Actual publish time',
  `platform_post_id` varchar(255) DEFAULT NULL COMMENT 'Post ID from platform API',
  `platform_post_url` text DEFAULT NULL COMMENT 'Public URL to the post',
  `video_url` text NOT NULL COMMENT 'Public MP4 URL for upload',
  `thumbnail_url` text DEFAULT NULL,
  `caption` text DEFAULT NULL,
  `hashtags` text DEFAULT NULL COMMENT 'JSON array of hashtags',
  `mentions` text DEFAULT NULL COMMENT 'JSON array of @mentions',
  `location` varchar(255) DEFAULT NULL,
  `privacy_level` varchar(50) DEFAULT 'PUBLIC' COMMENT 'PUBLIC, FRIENDS, PRIVATE',
  `allow_comments` tinyint(1) DEFAULT 1,
  `allow_duet` tinyint(1) DEFAULT 1 COMMENT 'TikTok: allow duets',
  `allow_stitch` tinyint(1) DEFAULT 1 COMMENT 'TikTok: allow stitches',
  `error_message` text DEFAULT NULL,
  `retry_count` int(11) DEFAULT 0 COMMENT 'Number of retry attempts',
  `last_retry_at` datetime DEFAULT NULL,
  `metadata` longtext DEFAULT NULL COMMENT 'JSON: platform-specific publish data',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY  (`id`),
  KEY `user_posts` (`wp_user_id`,`status`),
  KEY `scheduled_posts` (`status`,`scheduled_at`),
  KEY `video_job` (`video_job_id`),
  KEY `social_account` (`social_account_id`),
  KEY `platform_status` (`platform`,`status`)
$tail";

		$sql[ $analytics ] = "CREATE TABLE $analytics (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `social_post_id` bigint(20) unsigned NOT NULL,
  `views` bigint(20) DEFAULT 0,
  `likes` bigint(20) DEFAULT 0,
  `comments` bigint(20) DEFAULT 0,
  `shares` bigint(20) DEFAULT 0,
  `engagement_rate` decimal(5,2) DEFAULT NULL,
  `last_synced_at` datetime DEFAULT NULL,
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY  (`id`),
  UNIQUE KEY `unique_post_analytics` (`social_post_id`)
$tail";

		// The user's post templates and hashtag groups (the bridge's sql/mysql/0009, same spelling).
		$sql[ $templates ] = "CREATE TABLE $templates (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) NOT NULL,
  `caption` text DEFAULT NULL,
  `hashtags` text DEFAULT NULL COMMENT 'JSON array of hashtags',
  `platforms` varchar(255) DEFAULT NULL COMMENT 'JSON array of platform values',
  `options` text DEFAULT NULL COMMENT 'JSON object: per-platform options',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY  (`id`),
  KEY `user_templates` (`wp_user_id`,`id`)
$tail";

		$sql[ $groups ] = "CREATE TABLE $groups (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `wp_user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) NOT NULL,
  `hashtags` text DEFAULT NULL COMMENT 'JSON array of hashtags',
  `created_at` datetime DEFAULT CURRENT_TIMESTAMP,
  `updated_at` datetime DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY  (`id`),
  KEY `user_hashtag_groups` (`wp_user_id`,`id`)
$tail";

		return $sql;
	}

	/**
	 * Adds the two foreign keys of the original DDL where no foreign key on that column exists yet
	 * (the bridge's migrate creates them with the tables; dbDelta cannot). A failure (e.g. old rows
	 * that point nowhere) is logged and left: the tables work without the constraint.
	 *
	 * @return string[] What was added.
	 */
	function aurareels_social_bridge_add_foreign_keys() {
		global $wpdb;
		$p     = $wpdb->prefix;
		$links = array(
			array( $p . 'aurareels_social_posts', 'social_account_id', $p . 'aurareels_social_accounts' ),
			array( $p . 'aurareels_social_analytics', 'social_post_id', $p . 'aurareels_social_posts' ),
		);
		$added = array();
		foreach ( $links as $link ) {
			list( $table, $column, $parent ) = $link;
			$present = (int) $wpdb->get_var(
				$wpdb->prepare(
					'SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s AND REFERENCED_TABLE_NAME IS NOT NULL',
					$table,
					$column
				)
			);
			if ( $present > 0 ) {
				continue;
			}
			$ok = $wpdb->query( "ALTER TABLE `$table` ADD FOREIGN KEY (`$column`) REFERENCES `$parent`(`id`) ON DELETE CASCADE" ); // phpcs:ignore WordPress.DB.PreparedSQL
			if ( false === $ok ) {
				error_log( "AuraReels social bridge: could not add the foreign key $table.$column: " . $wpdb->last_error ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions
			} else {
				$added[] = "Added foreign key $table.$column";
			}
		}
		return $added;
	}

	/**
	 * Creates or completes the tables. Safe to run any number of times, before or after the
	 * bridge's `aurareels-bridge migrate`: dbDelta never drops a column, an index or a row.
	 *
	 * @return string[] What was changed (dbDelta's messages, then the foreign keys added).
	 */
	function aurareels_social_bridge_install_schema() {
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$changes = dbDelta( array_values( aurareels_social_bridge_schema() ) );
		$changes = array_merge( array_values( (array) $changes ), aurareels_social_bridge_add_foreign_keys() );
		global $wpdb;
		$complete = true;
		foreach ( array_keys( aurareels_social_bridge_schema() ) as $table ) {
			$complete = $complete && $table === $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $wpdb->esc_like( $table ) ) );
		}
		if ( $complete ) {  // otherwise the next request tries again
			update_option( 'aurareels_social_bridge_schema', AURAREELS_SOCIAL_BRIDGE_SCHEMA, true );
		}
		return $changes;
	}

	/**
	 * Activation hook (regular plugin).
	 *
	 * @return string[] What was changed.
	 */
	function aurareels_social_bridge_activate() {
		return aurareels_social_bridge_install_schema();
	}

	/**
	 * A must-use plugin is never "activated": create or complete the tables once per schema version.
	 */
	function aurareels_social_bridge_maybe_install() {
		if ( ( function_exists( 'wp_installing' ) && wp_installing() ) || AURAREELS_SOCIAL_BRIDGE_SCHEMA === get_option( 'aurareels_social_bridge_schema' ) ) {
			return;
		}
		// One request does it; the others go on (add_option fails when the row exists).
		if ( ! add_option( 'aurareels_social_bridge_schema_lock', (string) time(), '', false ) ) {
			$since = (int) get_option( 'aurareels_social_bridge_schema_lock' );
			if ( $since > time() - 300 ) {
				return;
			}
			update_option( 'aurareels_social_bridge_schema_lock', (string) time(), false );
		}
		aurareels_social_bridge_install_schema();
		delete_option( 'aurareels_social_bridge_schema_lock' );
	}

	register_activation_hook( __FILE__, 'aurareels_social_bridge_activate' );
	add_action( 'init', 'aurareels_social_bridge_maybe_install' );
	add_action( 'rest_api_init', 'aurareels_social_bridge_register_routes' );
	add_filter( 'rest_allowed_cors_headers', 'aurareels_social_bridge_cors_allow' );
	add_filter( 'rest_exposed_cors_headers', 'aurareels_social_bridge_cors_expose' );
	add_filter( 'rest_request_before_callbacks', 'aurareels_social_bridge_before_callbacks', 10, 2 );
	add_filter( 'rest_pre_serve_request', 'aurareels_social_bridge_serve_raw', 10, 3 );
	add_filter( 'rest_jsonp_enabled', 'aurareels_social_bridge_jsonp_enabled', 99 );

endif;
