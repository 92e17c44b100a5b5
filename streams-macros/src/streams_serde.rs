//! `#[derive(StreamsSerde)]`: a `DefaultSerde` impl backed by `JsonSerde` or `BincodeSerde`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::{Attribute, Data, DeriveInput, Error, Expr, ExprLit, Lit, Result, Token, parse_quote};

/// The accepted values of `format`, as listed in error messages.
const ACCEPTED_FORMATS: &str = "\"json\", \"bincode\"";

/// The wire format of the generated serde.
#[derive(Clone, Copy, Default)]
enum Format {
    /// `streams_core::serde::JsonSerde`.
    #[default]
    Json,
    /// `streams_core::serde::BincodeSerde`.
    Bincode,
}

impl Format {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "bincode" => Some(Self::Bincode),
            _ => None,
        }
    }

    fn serde_type(self) -> TokenStream {
        match self {
            Self::Json => quote!(::streams_core::serde::JsonSerde),
            Self::Bincode => quote!(::streams_core::serde::BincodeSerde),
        }
    }
}

/// Expands `#[derive(StreamsSerde)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream> {
    if let Data::Union(data) = &input.data {
        return Err(Error::new_spanned(
            data.union_token,
            "derive(StreamsSerde) works on structs and enums, not unions",
        ));
    }
    let format = parse_format(&input.attrs)?;
    if let Some(lifetime) = input.generics.lifetimes().next() {
        return Err(Error::new_spanned(
            lifetime,
            "derive(StreamsSerde) does not support lifetime parameters: \
             a default serde deserializes owned, 'static values",
        ));
    }

    let mut generics = input.generics.clone();
    let where_clause = generics.make_where_clause();
    for param in input.generics.type_params() {
        let ident = &param.ident;
        where_clause.predicates.push(parse_quote!(
            #ident: ::serde::Serialize + ::serde::de::DeserializeOwned + 'static
        ));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let name = &input.ident;
    let serde_type = format.serde_type();
    // Spanned at the type's name so that a missing `Serialize`/`Deserialize` impl is reported
    // there rather than at the derive.
    let serde = quote_spanned! {name.span()=>
        ::std::sync::Arc::new(#serde_type::<Self>::new())
    };

    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::streams_core::serde::DefaultSerde for #name #ty_generics
        #where_clause
        {
            fn default_serde() -> ::streams_core::serde::SerdeRef<Self> {
                #serde
            }
        }
    })
}

/// Reads the `format` from the `#[streams(...)]` attributes (json when none).
fn parse_format(attrs: &[Attribute]) -> Result<Format> {
    let mut format: Option<Format> = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("streams")) {
        attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("format") {
                return Err(Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown key `{}` in #[streams(...)]; the supported key is `format`",
                        meta.path.to_token_stream()
                    ),
                ));
            }
            if !meta.input.peek(Token![=]) {
                return Err(Error::new_spanned(
                    &meta.path,
                    format!("expected `format = \"...\"` with one of: {ACCEPTED_FORMATS}"),
                ));
            }
            let value: Expr = meta.value()?.parse()?;
            let Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) = &value
            else {
                return Err(Error::new_spanned(
                    &value,
                    format!("expected a string for `format`, one of: {ACCEPTED_FORMATS}"),
                ));
            };
            let Some(parsed) = Format::from_name(&lit.value()) else {
                return Err(Error::new_spanned(
                    lit,
                    format!(
                        "unknown format {:?}; accepted formats: {ACCEPTED_FORMATS}",
                        lit.value()
                    ),
                ));
            };
            if format.is_some() {
                return Err(Error::new_spanned(
                    &meta.path,
                    "`format` is given more than once in #[streams(...)]",
                ));
            }
            format = Some(parsed);
            Ok(())
        })?;
    }
    Ok(format.unwrap_or_default())
}
