//! What the stream join families share: the adapters from a user's joiner to the
//! [`JoinFn`] every join node calls, and the macro that writes each family's three methods
//! (default serdes, explicit options, a joiner that also sees the key).

use std::sync::Arc;

use crate::internals::stream_join::JoinFn;

/// An inner join's joiner: called with both values.
pub(crate) fn inner_joiner<K, V, VO, VR, F>(joiner: F) -> JoinFn<K, V, VO, VR>
where
    F: Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
{
    Arc::new(move |k, v, o| match (v, o) {
        (Some(v), Some(o)) => joiner(k, v, o),
        _ => unreachable!("an inner join calls its joiner with both values"),
    })
}

/// A left join's joiner: called with this side's value, and the other's if there is one.
pub(crate) fn left_joiner<K, V, VO, VR, F>(joiner: F) -> JoinFn<K, V, VO, VR>
where
    F: Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
{
    Arc::new(move |k, v, o| match v {
        Some(v) => joiner(k, v, o),
        None => unreachable!("a left join calls its joiner with the left value"),
    })
}

/// An outer join's joiner: called with either value or both.
pub(crate) fn outer_joiner<K, V, VO, VR, F>(joiner: F) -> JoinFn<K, V, VO, VR>
where
    F: Fn(&K, Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
{
    Arc::new(joiner)
}

/// Writes, on `KStream<K, V>`, a join family against `$other: &$Other<K, $VO>`: for each
/// kind, `$plain` (default serdes, or those the inputs carry, from `$defaults(self,
/// other)`), `$with` (explicit `$Opts`) and `$with_key` (a joiner that also sees the key,
/// Kafka's `ValueJoinerWithKey`), all ending in `$join(self, other, joiner, args..., opts,
/// JoinKind::$kind)`. The caller gives the impl block's docs first. `args` are the family's own arguments after the joiner; `$v` and
/// `$o` the values each kind's joiner receives; `$adapt` turns it into a [`JoinFn`]. The
/// caller gives the `$plain` method's doc comment.
macro_rules! join_methods {
    (
        $(#[$impl_doc:meta])*
        $other:ident: &$Other:ident<K, $VO:ident>, where $bound:tt;
        args $args:tt, options $Opts:ident, defaults $defaults:ident;
        join $join:ident;
        $(
            $(#[$doc:meta])*
            $kind:ident: $plain:ident, $with:ident, $with_key:ident, ($v:ty, $o:ty), $adapt:ident;
        )+
    ) => {
        $(#[$impl_doc])*
        impl<K: Data, V: Data> KStream<K, V> {
            $(
                join_methods!(@kind
                    $(#[$doc])*
                    $other: &$Other<K, $VO>, where $bound;
                    args $args, options $Opts, defaults $defaults;
                    join $join;
                    $kind: $plain, $with, $with_key, ($v, $o), $adapt;
                );
            )+
        }
    };
    (@kind
        $(#[$doc:meta])*
        $other:ident: &$Other:ident<K, $VO:ident>, where [$($plain_bound:tt)+];
        args [$($arg:ident: $arg_ty:ty),*], options $Opts:ident, defaults $defaults:ident;
        join $join:ident;
        $kind:ident: $plain:ident, $with:ident, $with_key:ident, ($v:ty, $o:ty), $adapt:ident;
    ) => {
        $(#[$doc])*
        pub fn $plain<$VO, VR, F>(
            &self,
            $other: &$Other<K, $VO>,
            joiner: F,
            $($arg: $arg_ty,)*
        ) -> KStream<K, VR>
        where
            K: DefaultSerde,
            V: DefaultSerde,
            $($plain_bound)+,
            VR: Data,
            F: Fn($v, $o) -> VR + Send + Sync + 'static,
        {
            self.$with($other, joiner, $($arg,)* $defaults(self, $other))
        }

        #[doc = concat!("[`", stringify!($plain), "`](Self::", stringify!($plain), ") with explicit options.")]
        pub fn $with<$VO: Data, VR: Data, F>(&self, $other: &$Other<K, $VO>, joiner: F, $($arg: $arg_ty,)* options: $Opts<K, V, $VO>) -> KStream<K, VR>
        where F: Fn($v, $o) -> VR + Send + Sync + 'static {
            let with_key = move |_: &K, v: $v, o: $o| joiner(v, o);
            self.$with_key($other, with_key, $($arg,)* options)
        }

        #[doc = concat!("[`", stringify!($with), "`](Self::", stringify!($with), ") with a joiner that also sees the key (Kafka's `ValueJoinerWithKey`).")]
        pub fn $with_key<$VO: Data, VR: Data, F>(&self, $other: &$Other<K, $VO>, joiner: F, $($arg: $arg_ty,)* options: $Opts<K, V, $VO>) -> KStream<K, VR>
        where F: Fn(&K, $v, $o) -> VR + Send + Sync + 'static {
            $join(self, $other, $adapt(joiner), $($arg,)* options, JoinKind::$kind)
        }
    };
}
pub(crate) use join_methods;
